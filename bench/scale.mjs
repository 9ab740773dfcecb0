// npm run bench:scale [-- --per-worker N] [-- --concurrency N] [-- --workers 2,4,-4] [-- --check structure]
// N workers on one PostgreSQL ledger, as separate processes, against 64
// loopback hosts that answer every request 200 ms late with a 400 x 600
// herbarium sheet (--per-host 4, so 256 slots: the hosts are not the limit;
// each worker --concurrency 8, see CONCURRENCY). For 1, 2 and 4 workers: aggregate images/s
// beside N x the one-worker rate measured in the same run, and the most
// requests any host had in flight at once, measured at the host, beside
// --per-host. Then 4 workers again with one killed by -9 mid-run: the other
// three finish, and the requests served beyond one per image (what the
// killed worker had in flight or fetched but not published) are counted.
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { arg, bin, fmt, HEADER, out, startServer, urlsFor } from './harness.mjs';
import { startCluster } from './pg-cluster.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const PER_WORKER = arg('per-worker', 1600);
// -- --check structure: the same runs with the cheaper check, to tell the machine's cores from the ledger as the limit.
const checkArg = process.argv.indexOf('--check');
const CHECK = checkArg > 0 ? process.argv[checkArg + 1] : 'decode';
// -- --workers 2,4: the counts to run beside one (-4: four with one killed by -9 mid-run).
const workersArg = process.argv.indexOf('--workers');
const WORKERS = workersArg > 0 ? process.argv[workersArg + 1].split(',').map(Number) : [2, 4, -4];
const HOSTS = 64;
const PER_HOST = 4;
// Each worker's share: four workers must fit on the bench machine's cores as four machines would
// each bring their own. At 16 per worker (80 sheets/s each, about 0.6 of a core to fetch and
// decode), four need 2.4 cores on a two-core machine, and the figure measures the machine.
const CONCURRENCY = arg('concurrency', 8);
const dir = join(out, 'scale');
rmSync(dir, { recursive: true, force: true });
mkdirSync(dir, { recursive: true });

const cluster = await startCluster('-c fsync=on -c synchronous_commit=on -c full_page_writes=on');
const server = await startServer(121, HOSTS, 200, 0, 0, '400x600');
let firstId = 8_000_000_000;

function ledger(name, images) {
  const url = new URL(cluster.url);
  url.pathname = `/${name}`;
  spawnSync('psql', ['-X', '-q', cluster.url, '-c', `CREATE DATABASE ${name}`]);
  const rows = urlsFor(server, images, firstId);
  firstId += images;
  const file = join(dir, `${name}.txt`);
  writeFileSync(file, [HEADER, ...rows.map(([id, u]) => `${id}\tStillImage\timage/jpeg\t${u}`)].join('\n') + '\n');
  const r = spawnSync(process.execPath, [bin, 'ingest', file, '--db', url.toString(), '--no-progress'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  return url.toString();
}

function worker(db, name) {
  const child = spawn(process.execPath, [bin, 'run', '--db', db, '--out', join(dir, name), '--allow-private-network', '--json', '--no-progress', '--concurrency', String(CONCURRENCY), '--per-host', String(PER_HOST), '--lease', '10', '--check', CHECK], { stdio: ['ignore', 'pipe', 'inherit'] });
  let stdout = '';
  child.stdout.on('data', (c) => (stdout += c));
  const exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, exited, summary: () => JSON.parse(stdout.trim().split('\n').pop()) };
}

async function workers(n, kill = false) {
  const images = n * PER_WORKER;
  const db = ledger(`scale_${n}${kill ? '_kill' : ''}`, images);
  await server.stats();
  const started = performance.now();
  const all = Array.from({ length: n }, () => worker(db, `out-${n}${kill ? '-kill' : ''}`));
  if (kill) {
    // Mid-run: about 40% of one worker's share done.
    await new Promise((r) => setTimeout(r, ((PER_WORKER * 0.4) / (CONCURRENCY / 0.2)) * 1000));
    all[0].child.kill('SIGKILL');
  }
  const exits = [];
  const codes = await Promise.all(all.map((w) => w.exited.then((code) => (exits.push((performance.now() - started) / 1000), code))));
  const seconds = (performance.now() - started) / 1000;
  const survivors = kill ? all.slice(1) : all;
  if (survivors.some((w, i) => codes[kill ? i + 1 : i] !== 0)) throw new Error(`a worker failed: ${codes}`);
  const done = survivors.reduce((s, w) => s + w.summary().idsDone, 0);
  const stats = await server.stats();
  return { n, images, seconds, rate: images / seconds, done, exits, ...stats };
}

try {
  console.log(`bench:scale  ${fmt(PER_WORKER)} images per worker, ${HOSTS} hosts answering 200 ms late, 400 x 600 sheets, --per-host ${PER_HOST}, --concurrency ${CONCURRENCY} per worker, --check ${CHECK}`);
  console.log(`machine      ${cpus().length} x ${cpus()[0]?.model.trim()}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}, PostgreSQL with fsync on`);
  const counts = WORKERS.filter((n) => n > 1);
  const one = await workers(1);
  const results = [one];
  for (const n of counts) results.push(await workers(n));
  for (const r of results) {
    const ideal = r.n * one.rate;
    console.log(
      `${r.n} worker${r.n > 1 ? 's' : ' '}  ${fmt(r.rate, 1).padStart(7)} images/s  vs ${r.n} x one ${fmt(ideal, 1).padStart(7)}  ratio ${(r.rate / ideal).toFixed(2)} (target >= 0.90)  most in flight at a host ${r.maxInFlight} (--per-host ${PER_HOST})  done ${fmt(r.done)} of ${fmt(r.images)}`,
    );
    // When each worker ended: a tail (one worker's last window) shows as a spread.
    if (r.n > 1) console.log(`             workers ended at ${r.exits.map((t) => `${t.toFixed(1)} s`).join(', ')}`);
  }
  if (WORKERS.includes(-4)) {
    const killed = await workers(4, true);
    const extra = killed.served - killed.images;
    console.log(
      `4 workers, one killed with -9 mid-run: the other three did ${fmt(killed.done)} of ${fmt(killed.images)} (the rest published by the killed one first); requests beyond one per image: ${extra} (target: a few hundred at most); most in flight at a host ${killed.maxInFlight}`,
    );
  }
} finally {
  server.stop();
  cluster.stop();
}
