// npm run bench:run [-- --images 20000] [-- --only 1,2]
// Download benchmarks on loopback, each figure beside a baseline measured in
// the same run (the machines are shared: ratios, not absolute times):
// 1. throughput: herbdl vs aria2c -j 64 on the same URLs from the same server;
// 2. latency: every response 100 ms late, vs the ideal concurrency / latency;
// 3. fairness: half the gbifIDs on a host that never answers, vs the same
//    healthy work alone;
// 4. mixed JPEG / PNG / TIFF bodies with validation and conversion, vs JPEG only.
// Scenarios 1 and 2 also run the engine alone (validation replaced by a header
// read, bench/engine-run.mjs) to show what validation costs.
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';

const here = dirname(fileURLToPath(import.meta.url));
const bin = join(here, '..', 'bin', 'herbdl');
const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const IMAGES = arg('images', 20_000);
// --only 1 (or 1,2): run just those scenarios.
const onlyArg = process.argv.indexOf('--only');
const only = onlyArg > 0 ? new Set(process.argv[onlyArg + 1].split(',').map(Number)) : undefined;
const want = (n) => !only || only.has(n);
const CONCURRENCY = 64;
const out = join(here, 'out', 'run');
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });

for (const [tool, pkg] of [['aria2c', 'aria2'], ['/usr/bin/time', 'time']]) {
  if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) {
    console.error(`bench:run needs ${tool}: apt-get install ${pkg}`);
    process.exit(2);
  }
}

async function startServer(first, hosts, delayMs, hangOctet = 0, mixed = 0) {
  const child = spawn(process.execPath, [join(here, 'image-server.mjs'), first, hosts, delayMs, hangOctet, mixed], { stdio: ['pipe', 'pipe', 'inherit'] });
  const line = await new Promise((resolve) => child.stdout.once('data', (c) => resolve(c.toString())));
  const { ports } = JSON.parse(line);
  return { child, ports, stop: () => child.stdin.end() };
}

const HEADER = 'gbifID\ttype\tformat\tidentifier';
function pathFor(id) {
  const s = String(id);
  return `${s.slice(0, 3)}/${s.slice(3, 6)}/${s}-00.jpg`;
}

/** gbifID -> URL, round-robin over the server's hosts. */
function urlsFor(server, count, firstId, onlyHosts) {
  const hosts = onlyHosts ?? Object.keys(server.ports);
  return Array.from({ length: count }, (_, i) => [firstId + i, `http://${hosts[i % hosts.length]}:${server.ports[hosts[i % hosts.length]]}/${i}.jpg`]);
}

function ledgerFor(name, rows) {
  const dir = join(out, name);
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'multimedia.txt');
  writeFileSync(file, [HEADER, ...rows.map(([id, url]) => `${id}\tStillImage\timage/jpeg\t${url}`)].join('\n') + '\n');
  const db = join(dir, 'ledger.db');
  const r = spawnSync(process.execPath, [bin, 'ingest', file, '--db', db, '--no-progress'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  return { dir, db, images: join(dir, 'images') };
}

function timed(cmd, args) {
  const r = spawnSync('/usr/bin/time', ['-f', '%e %M', cmd, ...args], { encoding: 'utf8', maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`${cmd} exited ${r.status}: ${r.stderr.slice(-2000)}`);
  const [seconds, kb] = r.stderr.trim().split('\n').pop().split(' ').map(Number);
  return { seconds, rssMb: kb / 1024, stdout: r.stdout };
}

function herbdlRun(ledger, extra = []) {
  const t = timed(process.execPath, [bin, 'run', '--db', ledger.db, '--out', ledger.images, '--allow-private-network', '--json', '--no-progress', '--concurrency', String(CONCURRENCY), ...extra]);
  const summary = JSON.parse(t.stdout.trim().split('\n').pop());
  if (summary.idsDone !== ledger.expected) throw new Error(`herbdl stored ${summary.idsDone} of ${ledger.expected}`);
  return { ...t, rate: summary.images / t.seconds, mbs: summary.bytes / 1e6 / t.seconds };
}

/** The same run with validation replaced by a header read (bench/engine-run.mjs): the engine alone. */
function engineRun(ledger) {
  const t = timed(process.execPath, [join(here, 'engine-run.mjs'), ledger.db, ledger.images, String(CONCURRENCY)]);
  const summary = JSON.parse(t.stdout.trim().split('\n').pop());
  if (summary.idsDone !== ledger.expected) throw new Error(`engine stored ${summary.idsDone} of ${ledger.expected}`);
  return { ...t, rate: summary.images / t.seconds };
}

function aria2(rows, name) {
  const dir = join(out, name);
  mkdirSync(dir, { recursive: true });
  const list = join(dir, 'urls.txt');
  writeFileSync(list, rows.map(([id, url]) => `${url}\n  out=${pathFor(id)}`).join('\n') + '\n');
  const t = timed('aria2c', ['-i', list, '-j', String(CONCURRENCY), '-d', join(dir, 'images'), '--allow-overwrite=true', '--auto-file-renaming=false', '--file-allocation=none', '--console-log-level=error', '--summary-interval=0', '--download-result=hide', '-q']);
  return { ...t, rate: rows.length / t.seconds };
}

const fmt = (n, d = 0) => n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });
const results = [];
console.log(`bench:run  ${fmt(IMAGES)} images per scenario, --concurrency ${CONCURRENCY}`);
console.log(`machine    ${cpus().length} x ${cpus()[0]?.model.trim()}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}`);

// 1. Throughput: 16 hosts (so --per-host 4 allows 64 in flight), no delay.
if (want(1)) {
  const server = await startServer(101, 16, 0);
  const rows = urlsFor(server, IMAGES, 1_000_000_000);
  const baseline = aria2(rows, 'aria2');
  const ledger = { ...ledgerFor('throughput', rows), expected: IMAGES };
  const h = herbdlRun(ledger);
  const bytes = readFileSync(join(ledger.images, pathFor(rows[0][0]))).length;
  const engine = engineRun({ ...ledgerFor('throughput-engine', rows), expected: IMAGES });
  server.stop();
  console.log(`\n1. throughput (${fmt(bytes / 1024, 1)} KiB JPEGs, 16 hosts)`);
  console.log(`   aria2c -j 64 (baseline)   ${fmt(baseline.rate).padStart(7)} images/s   peak RSS ${fmt(baseline.rssMb)} MB`);
  console.log(`   herbdl run                ${fmt(h.rate).padStart(7)} images/s   ${fmt(h.mbs, 1)} MB/s   peak RSS ${fmt(h.rssMb)} MB`);
  console.log(`   ratio ${fmt(h.rate / baseline.rate, 2)}x (target >= 1.00x; RSS <= 300 MB)`);
  console.log(`   engine alone, validation replaced by a header read ${fmt(engine.rate).padStart(7)} images/s`);
  console.log(`   validation costs ${fmt(100 * (1 - h.rate / engine.rate))}% of loopback throughput (target <= 15%)`);
  results.push(h.rssMb);
  results.jpegRate = h.rate;
}

// 2. Latency: every response 100 ms late; ideal is concurrency / latency.
if (want(2)) {
  const server = await startServer(121, 16, 100);
  const rows = urlsFor(server, IMAGES, 2_000_000_000);
  const ledger = { ...ledgerFor('latency', rows), expected: IMAGES };
  const h = herbdlRun(ledger);
  const engine = engineRun({ ...ledgerFor('latency-engine', rows), expected: IMAGES });
  server.stop();
  const ideal = CONCURRENCY / 0.1;
  console.log(`\n2. latency (every response +100 ms)`);
  console.log(`   ideal 64 / 0.1 s (baseline) ${fmt(ideal).padStart(5)} images/s`);
  console.log(`   herbdl run                   ${fmt(h.rate).padStart(5)} images/s   peak RSS ${fmt(h.rssMb)} MB`);
  console.log(`   ratio ${fmt(h.rate / ideal, 2)} (target >= 0.90)`);
  console.log(`   engine alone, validation replaced by a header read ${fmt(engine.rate).padStart(5)} images/s: validation costs ${fmt(100 * (1 - h.rate / engine.rate))}%`);
  results.push(h.rssMb);
}

// 3. Fairness: half the gbifIDs on a host that accepts and never answers.
if (want(3)) {
  const server = await startServer(141, 15, 0, 199);
  const healthyHosts = Object.keys(server.ports).filter((h) => h !== '127.0.0.199');
  const half = Math.floor(IMAGES / 2);
  const healthy = urlsFor(server, half, 3_000_000_000, healthyHosts);
  const alone = { ...ledgerFor('fair-alone', healthy), expected: half };
  const base = herbdlRun(alone);
  const dead = urlsFor(server, IMAGES - half, 3_100_000_000, ['127.0.0.199']);
  // Interleaved, as a real export mixes hosts.
  const mixed = healthy.flatMap((row, i) => (dead[i] ? [row, dead[i]] : [row]));
  const ledger = ledgerFor('fair-dead', mixed);
  const started = Date.now();
  const child = spawn(process.execPath, [bin, 'run', '--db', ledger.db, '--out', ledger.images, '--allow-private-network', '--json', '--no-progress', '--concurrency', String(CONCURRENCY), '--timeout', '10'], { stdio: 'ignore' });
  const db = new Database(ledger.db, { readonly: true });
  let peakKb = 0;
  let doneAt = 0;
  while (!doneAt) {
    await new Promise((r) => setTimeout(r, 100));
    try {
      const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
      peakKb = Math.max(peakKb, Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0));
    } catch {}
    const done = db.prepare("SELECT value FROM totals WHERE name = 'ids_done'").pluck().get();
    if (done >= half) doneAt = Date.now();
    if (Date.now() - started > 600_000) throw new Error('fairness run did not finish the healthy hosts in 10 minutes');
  }
  db.close();
  child.kill('SIGKILL');
  server.stop();
  const rate = half / ((doneAt - started) / 1000);
  console.log(`\n3. fairness (${fmt(IMAGES - half)} of ${fmt(IMAGES)} gbifIDs on a host that never answers)`);
  console.log(`   healthy hosts alone (baseline)  ${fmt(base.rate).padStart(6)} images/s`);
  console.log(`   healthy hosts beside dead one   ${fmt(rate).padStart(6)} images/s   peak RSS ${fmt(peakKb / 1024)} MB`);
  console.log(`   ratio ${fmt(rate / base.rate, 2)} (target >= 0.90; includes process start, measured from launch)`);
  results.push(peakKb / 1024);
}
// 4. Validation on mixed formats: a third each JPEG, PNG, TIFF (the last two converted to JPEG).
if (want(4)) {
  const server = await startServer(161, 16, 0, 0, 1);
  const rows = urlsFor(server, IMAGES, 4_000_000_000);
  const ledger = { ...ledgerFor('mixed', rows), expected: IMAGES };
  const h = herbdlRun(ledger);
  server.stop();
  console.log(`\n4. mixed JPEG / PNG / TIFF (PNG and TIFF converted to JPEG)`);
  console.log(`   JPEG only, scenario 1 (baseline) ${fmt(results.jpegRate).padStart(6)} images/s`);
  console.log(`   mixed                            ${fmt(h.rate).padStart(6)} images/s   peak RSS ${fmt(h.rssMb)} MB`);
  console.log(`   ratio ${fmt(h.rate / results.jpegRate, 2)}`);
  results.push(h.rssMb);
}
console.log(`\npeak RSS, all scenarios: ${fmt(Math.max(...results))} MB (target <= 300 MB)`);
