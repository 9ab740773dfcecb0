/**
 * A throwaway PostgreSQL cluster for the tests and benchmarks: initdb into a temporary
 * folder, pg_ctl on 127.0.0.1 at a free port, stopped and removed at the
 * end. The server refuses to run as root, so under root it runs as the
 * `postgres` user (Debian's package makes it) or `nobody`.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

function binDir() {
  const candidates = [process.env.PG_BIN ?? ''];
  if (existsSync('/usr/lib/postgresql')) {
    const versions = readdirSync('/usr/lib/postgresql').sort((a, b) => Number(b) - Number(a));
    candidates.push(...versions.map((v) => `/usr/lib/postgresql/${v}/bin`));
  }
  candidates.push(...(process.env.PATH ?? '').split(':'));
  const found = candidates.find((dir) => dir && existsSync(join(dir, 'initdb')) && existsSync(join(dir, 'pg_ctl')));
  if (!found) throw new Error("PostgreSQL's server programs (initdb, pg_ctl) were not found: install Debian's postgresql package, or set HERBDL_TEST_PG to a server's URL");
  return found;
}

/** The user the server runs as, under root: its ids (files the server must read are to be its own). */
export function serverUser() {
  return runAs();
}

function runAs() {
  if (process.getuid?.() !== 0) return undefined;
  for (const user of ['postgres', 'nobody']) {
    try {
      const uid = Number(execFileSync('id', ['-u', user]).toString().trim());
      const gid = Number(execFileSync('id', ['-g', user]).toString().trim());
      return { uid, gid };
    } catch {
      // try the next
    }
  }
  throw new Error('running as root, and neither a postgres nor a nobody user exists to run the test server as');
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const port = server.address().port;
      server.close(() => resolve(port));
    });
  });
}

/** Starts a cluster, `settings` (-c name=value ...) over the test ones; resolves to its URL and stop(). */
export async function startCluster(settings = '') {
  const bin = binDir();
  const user = runAs();
  const dir = mkdtempSync(join(tmpdir(), 'herbdl-pg-'));
  if (user) chownSync(dir, user.uid, user.gid);
  const data = join(dir, 'data');
  const run = (program, args) => {
    const result = spawnSync(join(bin, program), args, { ...(user ?? {}), cwd: dir, encoding: 'utf8' });
    if (result.status !== 0) throw new Error(`${program} failed: ${result.stderr || result.stdout}`);
  };
  run('initdb', ['-D', data, '-U', 'herbdl', '--auth=trust', '-E', 'UTF8', '--no-locale', '--no-sync']);
  const port = await freePort();
  // A test server: durability is the workers' concern here, not the server's (nothing kills it). Benchmarks turn fsync back on.
  const options = `-c listen_addresses=127.0.0.1 -p ${port} -k ${dir} -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300 ${settings}`;
  // The server's output goes to its log, never to a pipe of ours: spawnSync would wait for it to close.
  const start = () => run('pg_ctl', ['-D', data, '-l', join(dir, 'server.log'), '-w', '-t', '60', '-o', options, 'start']);
  start();
  let stopped = false;
  const stop = () => {
    if (stopped) return;
    stopped = true;
    spawnSync(join(bin, 'pg_ctl'), ['-D', data, '-m', 'immediate', '-w', 'stop'], { ...(user ?? {}), cwd: dir });
    rmSync(dir, { recursive: true, force: true });
  };
  const signalAll = (signal) => {
    const postmaster = Number(readFileSync(join(data, 'postmaster.pid'), 'utf8').split('\n')[0]);
    const children = spawnSync('pgrep', ['-P', String(postmaster)], { encoding: 'utf8' }).stdout.trim().split('\n').filter(Boolean).map(Number);
    for (const pid of [postmaster, ...children]) process.kill(pid, signal);
  };
  // A benchmark that throws midway still stops its server: one was found running long after its run had died.
  process.once('exit', stop);
  return {
    url: `postgres://herbdl@127.0.0.1:${port}/postgres`,
    stop,
    // For tests of a server that goes away: `down` ends every connection (fast: as an administrator's shutdown;
    // immediate: as a crash) and keeps the data; `up` starts it again on the same port.
    down: (mode = 'fast') => run('pg_ctl', ['-D', data, '-m', mode, '-w', 'stop']),
    up: start,
    // For tests of a server that stops answering without closing its connections (frozen, its storage hung):
    // every process of the cluster stopped with SIGSTOP, and let go on with SIGCONT.
    freeze: () => signalAll('SIGSTOP'),
    thaw: () => signalAll('SIGCONT'),
  };
}
