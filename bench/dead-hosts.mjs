// npm run bench:dead-hosts [-- --ids 160000] [-- --hosts 2000] [-- --window 30] [-- --shared 50] [-- --sqlite-only]
// Dead hosts are the normal case: a run must end by itself once only they
// hold work, one breaker window (--breaker-window) after it first asks them.
// The figure: seconds until a run ends when --hosts dead hosts hold --ids
// gbifIDs, spread as in an export (a few big hosts, a long tail of small
// ones, in no order), beside the same run with one dead host holding as many
// (the least a run can take: one breaker window, and setting the rest aside).
// Each host refuses connections at once (nothing listens on its address), so
// the figure is the scheduler's, not the network's. Peak RSS beside it. One
// gbifID in --shared (50; 0 for none) has its host's placeholder image, one
// URL shared by many gbifIDs, as real exports have ("image not available"):
// until session 42 a gbifID waiting on the fetch of such a URL was queued on
// the host once its breaker opened, and the run waited out the cooldown.
// Then later runs on the many hosts' ledger, where the first parked every
// gbifID behind its host's open breaker: one while the breakers are still
// open (it claims none of them), and one once their cooldowns have passed
// (it probes each host once, with one of its gbifIDs, and the rest stay
// parked), beside `herbdl export` of the same ledger (one read of every
// image row: what a run that claimed each gbifID again to set it aside cost
// at least). Then the same on PostgreSQL (`-- --sqlite-only` skips it): the
// ledger moved there by `herbdl migrate`, whose statistics say no gbifID is
// claimed, as after any bulk load.
import { rmSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { rng } from './gen-multimedia.mjs';
import { spawnSync } from 'node:child_process';
import Database from 'better-sqlite3';
import { arg, bin, databaseUrl, fmt, freePort, ledgerFor, out, psql, requireTools, timed } from './harness.mjs';
import { startCluster } from './pg-cluster.mjs';

const IDS = arg('ids', 160_000);
const HOSTS = arg('hosts', 2_000);
const WINDOW = arg('window', 30);
const SHARED = arg('shared', 50);

/** Deterministic: host k gets a share near -ln(k / hosts), as bench/gen-multimedia.mjs spreads an export's. */
function rows(hosts, port) {
  const rand = rng(42);
  return Array.from({ length: IDS }, (_, i) => {
    const k = Math.floor(rand() * rand() * hosts);
    const path = SHARED > 0 && i % SHARED === 0 ? 'placeholder' : String(i);
    return [1_000_000_000 + ((i * 2654435761) % 4294967296), `http://127.3.${k >> 8}.${k & 255}:${port}/media/${path}.jpg`];
  });
}

function run(name, hosts, port) {
  // A ledger of an earlier round would keep its breakers open.
  rmSync(join(out, name), { recursive: true, force: true });
  const ledger = ledgerFor(name, rows(hosts, port));
  const t = timed(process.execPath, [bin, 'run', '--db', ledger.db, '--out', ledger.images, '--allow-private-network', '--json', '--no-progress', '--breaker-window', String(WINDOW)]);
  const summary = JSON.parse(t.stdout.trim().split('\n').pop());
  if (summary.idsDone !== 0 || summary.idsFailed + summary.pending !== IDS || summary.recovered !== 0) {
    throw new Error(`${name}: ${summary.idsDone} done, ${summary.idsFailed} failed, ${summary.pending} pending of ${IDS}`);
  }
  return { ...t, opened: summary.hostsOpened.length, failed: summary.idsFailed, ledger };
}

console.log(`bench:dead-hosts  ${fmt(IDS)} gbifIDs, --breaker-window ${WINDOW}${SHARED > 0 ? `, one in ${SHARED} on its host's placeholder URL` : ''}`);
console.log(`machine           ${cpus().length} x ${cpus()[0]?.model.trim()}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}`);
// A port with nothing listening on it (on any 127.3.x.y).
const port = await freePort('127.3.0.1');
const one = run('dead-one', 1, port);
console.log(`one dead host          ${fmt(one.seconds, 1).padStart(6)} s  (${fmt(one.seconds / WINDOW, 2)} breaker windows; ${fmt(one.rssMb)} MB)`);
const many = run('dead-many', HOSTS, port);
console.log(`${fmt(HOSTS)} dead hosts       ${fmt(many.seconds, 1).padStart(6)} s  (${fmt(many.seconds / WINDOW, 2)} breaker windows; ${many.opened} breakers opened, ${fmt(many.failed)} gbifIDs failed; ${fmt(many.rssMb)} MB)`);
console.log(`   ratio ${fmt(many.seconds / one.seconds, 2)}x the one-host run (target: about 1x: every host first asked within the first window)`);

/** Later runs on `db`: every breaker still open, then every cooldown passed (`expire` makes it so), beside an export of the same ledger. */
function laterRuns(label, db, expire) {
  const parked = IDS - many.failed;
  const later = (what) => {
    const t = timed(process.execPath, [bin, 'run', '--db', db, '--out', many.ledger.images, '--allow-private-network', '--json', '--no-progress']);
    const summary = JSON.parse(t.stdout.trim().split('\n').pop());
    if (summary.idsDone !== 0 || summary.pending !== parked) throw new Error(`${what}: ${t.stdout}`);
    return { ...t, summary };
  };
  const open = later('later run, all open');
  if (open.summary.idsSetAside !== 0) throw new Error(`later run, all open: ${open.summary.idsSetAside} set aside, none expected`);
  expire();
  const probed = later('later run, cooldowns passed');
  if (probed.summary.idsSetAside > many.opened) throw new Error(`later run, cooldowns passed: ${probed.summary.idsSetAside} set aside, one per host expected`);
  const exported = timed(process.execPath, [bin, 'export', '--db', db, '--state', 'all', '--out-file', join(many.ledger.dir, 'export.csv')]);
  console.log(`${label.padEnd(22)} all open ${fmt(open.seconds, 1)} s (${fmt(open.rssMb)} MB); cooldowns passed ${fmt(probed.seconds, 1)} s (${fmt(probed.summary.idsSetAside)} probes; ${fmt(probed.rssMb)} MB)   export of the same ledger (${fmt(parked)} parked): ${fmt(exported.seconds, 1)} s`);
  console.log(`   ratio ${fmt(open.seconds / exported.seconds, 2)}x and ${fmt(probed.seconds / exported.seconds, 2)}x an export`);
}

laterRuns('later runs', many.ledger.db, () => {
  const db = new Database(many.ledger.db);
  db.prepare('UPDATE hosts SET breaker_open_until = ? WHERE breaker_open_until IS NOT NULL').run(Date.now() - 1000);
  db.close();
});

if (!process.argv.includes('--sqlite-only')) {
  requireTools('bench:dead-hosts', [['psql', 'postgresql-client']]);
  const cluster = await startCluster('-c fsync=on -c synchronous_commit=on -c full_page_writes=on');
  try {
    const url = databaseUrl(cluster.url, 'dead_hosts');
    spawnSync(...psql(cluster.url, 'CREATE DATABASE dead_hosts'));
    const moved = spawnSync(process.execPath, [bin, 'migrate', '--from', many.ledger.db, '--to', url], { encoding: 'utf8' });
    if (moved.status !== 0) throw new Error(moved.stderr);
    // Their breakers as the first run left them: open for its cooldown.
    spawnSync(...psql(url, `UPDATE hosts SET breaker_open_until = ${Date.now() + 3_600_000} WHERE breaker_open_until IS NOT NULL`));
    laterRuns('the same, PostgreSQL', url, () => spawnSync(...psql(url, `UPDATE hosts SET breaker_open_until = ${Date.now() - 1000} WHERE breaker_open_until IS NOT NULL`)));
  } finally {
    cluster.stop();
  }
}
