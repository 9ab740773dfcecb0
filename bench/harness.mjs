// What the download benchmarks share: loopback image servers in their own
// process, ledgers made by the real CLI, timed runs of herbdl and aria2c.
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
export const bin = join(here, '..', 'bin', 'herbdl');
export const CONCURRENCY = 64;
export const out = join(here, 'out', 'run');

/** `tls`, from tls-hosts.mjs: every host serves HTTPS, and URLs for it say https. */
export async function startServer(first, hosts, delayMs, hangOctet = 0, mixed = 0, sheet = '', tls = undefined) {
  const env = tls ? { ...process.env, BENCH_TLS: tls.index } : process.env;
  const child = spawn(process.execPath, [join(here, 'image-server.mjs'), first, hosts, delayMs, hangOctet, mixed, sheet], { stdio: ['pipe', 'pipe', 'inherit'], env });
  const line = await new Promise((resolve) => child.stdout.once('data', (c) => resolve(c.toString())));
  const { ports } = JSON.parse(line);
  const stats = () => {
    child.stdin.write('stats\n');
    return new Promise((resolve) => child.stdout.once('data', (c) => resolve(JSON.parse(c.toString()))));
  };
  return { child, ports, stats, stop: () => child.stdin.end(), scheme: tls ? 'https' : 'http', ca: tls?.ca };
}

export const HEADER = 'gbifID\ttype\tformat\tidentifier';
export function pathFor(id) {
  const s = String(id);
  return `${s.slice(0, 3)}/${s.slice(3, 6)}/${s}-00.jpg`;
}

/** gbifID -> URL, round-robin over the server's hosts. */
export function urlsFor(server, count, firstId, onlyHosts) {
  const hosts = onlyHosts ?? Object.keys(server.ports);
  return Array.from({ length: count }, (_, i) => [firstId + i, `${server.scheme}://${hosts[i % hosts.length]}:${server.ports[hosts[i % hosts.length]]}/${i}.jpg`]);
}

export function ledgerFor(name, rows) {
  const dir = join(out, name);
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'multimedia.txt');
  writeFileSync(file, [HEADER, ...rows.map(([id, url]) => `${id}\tStillImage\timage/jpeg\t${url}`)].join('\n') + '\n');
  const db = join(dir, 'ledger.db');
  const r = spawnSync(process.execPath, [bin, 'ingest', file, '--db', db, '--no-progress'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  return { dir, db, images: join(dir, 'images') };
}

/** Stops the bench `name` in one line if a tool it measures against is missing: `tools` are [command, Debian package] pairs. */
export function requireTools(name, tools) {
  for (const [tool, pkg] of tools) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) {
      console.error(`${name} needs ${tool}: apt-get install ${pkg}`);
      process.exit(2);
    }
  }
}

/** psql's command and arguments to run `commands` against `url`, stopping at the first error (for spawnSync or timed). */
export function psql(url, ...commands) {
  return ['psql', ['-X', '-q', '-v', 'ON_ERROR_STOP=1', url, ...commands.flatMap((c) => ['-c', c])]];
}

/** The URL of database `name` on the server `serverUrl` names. */
export function databaseUrl(serverUrl, name) {
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

/** The ingest baseline on SQLite: `sqlite3 .import` of `file` into a bare table of a fresh database in `dir`, timed, the database gone after. */
export function timedImport(file, dir) {
  const db = join(dir, 'import.db');
  removeSqlite(db);
  const t = timed('sqlite3', [db, '-cmd', '.mode tabs', `.import ${file} media`]);
  removeSqlite(db);
  return t;
}

/** Removes a SQLite database and the files beside it. */
export function removeSqlite(db) {
  for (const s of ['', '-wal', '-shm', '-journal']) rmSync(db + s, { force: true });
}

/**
 * The ingest baseline on PostgreSQL: psql's `\copy` of `file` into a table of
 * its columns in a fresh database `baseline` on `serverUrl`, then an index on
 * gbifID (the same rows made queryable by ID), timed; the database dropped
 * after, so a file of the real export's size needs room for one at a time.
 */
export function timedCopyBaseline(serverUrl, file) {
  const head = Buffer.alloc(4096);
  const fd = openSync(file, 'r');
  readSync(fd, head, 0, head.length, 0);
  closeSync(fd);
  const columns = head.toString('utf8').split('\n')[0].split('\t');
  const baseline = databaseUrl(serverUrl, 'baseline');
  spawnSync(...psql(serverUrl, 'DROP DATABASE IF EXISTS baseline', 'CREATE DATABASE baseline'));
  spawnSync(...psql(baseline, `CREATE TABLE media (${columns.map((c) => `"${c}" text`).join(', ')})`));
  const t = timed(...psql(baseline, `\\copy media FROM '${file}' WITH (FORMAT text, HEADER true)`, 'CREATE INDEX ON media ("gbifID")'));
  spawnSync(...psql(serverUrl, 'DROP DATABASE baseline'));
  return t;
}

/** A numeric `--name N` from the command line, else `fallback`. */
export function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
}

export function timed(cmd, args, env = process.env) {
  const r = spawnSync('/usr/bin/time', ['-f', '%e %M', cmd, ...args], { encoding: 'utf8', maxBuffer: 1 << 26, env });
  if (r.status !== 0) throw new Error(`${cmd} exited ${r.status}: ${r.stderr.slice(-2000)}`);
  const [seconds, kb] = r.stderr.trim().split('\n').pop().split(' ').map(Number);
  return { seconds, rssMb: kb / 1024, stdout: r.stdout };
}

/** `ca`: a certificate authority the hosts' certificates come from (HTTPS hosts), added as a user would. */
export function herbdlRun(ledger, extra = [], ca = undefined) {
  const env = ca ? { ...process.env, NODE_EXTRA_CA_CERTS: ca } : process.env;
  const t = timed(process.execPath, [bin, 'run', '--db', ledger.db, '--out', ledger.images, '--allow-private-network', '--json', '--no-progress', '--concurrency', String(CONCURRENCY), ...extra], env);
  const summary = JSON.parse(t.stdout.trim().split('\n').pop());
  if (summary.idsDone !== ledger.expected) throw new Error(`herbdl stored ${summary.idsDone} of ${ledger.expected}`);
  return { ...t, rate: summary.images / t.seconds, mbs: summary.bytes / 1e6 / t.seconds };
}

/** The same run with validation replaced by a header read (bench/engine-run.mjs): the engine alone. */
export function engineRun(ledger) {
  const t = timed(process.execPath, [join(here, 'engine-run.mjs'), ledger.db, ledger.images, String(CONCURRENCY)]);
  const summary = JSON.parse(t.stdout.trim().split('\n').pop());
  if (summary.idsDone !== ledger.expected) throw new Error(`engine stored ${summary.idsDone} of ${ledger.expected}`);
  return { ...t, rate: summary.images / t.seconds };
}

export function aria2(rows, name, ca = undefined) {
  const dir = join(out, name);
  mkdirSync(dir, { recursive: true });
  const list = join(dir, 'urls.txt');
  writeFileSync(list, rows.map(([id, url]) => `${url}\n  out=${pathFor(id)}`).join('\n') + '\n');
  const t = timed('aria2c', ['-i', list, '-j', String(CONCURRENCY), '-d', join(dir, 'images'), '--allow-overwrite=true', '--auto-file-renaming=false', '--file-allocation=none', '--console-log-level=error', '--summary-interval=0', '--download-result=hide', '-q', ...(ca ? [`--ca-certificate=${ca}`] : [])]);
  return { ...t, rate: rows.length / t.seconds };
}

export const fmt = (n, d = 0) => n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });

/** A port free on `address` now: nothing listens on it (on other loopback addresses too, as a rule). */
export async function freePort(address) {
  const probe = createServer();
  await new Promise((resolve) => probe.listen(0, address, resolve));
  const { port } = probe.address();
  await new Promise((resolve) => probe.close(resolve));
  return port;
}
