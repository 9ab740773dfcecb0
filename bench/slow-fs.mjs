// npm run bench:slow-fs [-- --sheets 6000] [-- --delay-us 2000] [-- --rounds 2]
// Publishing onto a filesystem whose renames are slow, as on the network
// filesystem that workers sharing --out use on a cluster (NFS, Lustre: each
// rename a round trip to the server). The same run twice on the same loopback
// hosts (8 of them, 400 x 600 sheets, no delay), both under strace so both
// pay its cost: the baseline with renames as the local disk does them, the
// figure with every rename held --delay-us longer (strace's delay injection,
// which needs strace: apt-get install strace). Prints images/s of each and
// their ratio (target >= 0.90: a slow rename should cost the run little).
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { arg, bin, CONCURRENCY, fmt, ledgerFor, out, startServer, timed, urlsFor } from './harness.mjs';

const SHEETS = arg('sheets', 6000);
const DELAY_US = arg('delay-us', 2000);
const ROUNDS = arg('rounds', 2);
if (spawnSync('sh', ['-c', 'command -v strace']).status !== 0) {
  console.error('bench:slow-fs needs strace: apt-get install strace');
  process.exit(2);
}

const RENAMES = 'rename,renameat,renameat2';
function run(rows, delayUs) {
  const name = `slow-fs-${delayUs}`;
  rmSync(join(out, name), { recursive: true, force: true });
  const ledger = ledgerFor(name, rows);
  const args = ['-f', '-qq', '--seccomp-bpf', '-o', '/dev/null', '-e', `trace=${RENAMES}`, '-e', `inject=${RENAMES}:delay_exit=${delayUs}`];
  const herbdl = [bin, 'run', '--db', ledger.db, '--out', ledger.images, '--allow-private-network', '--json', '--no-progress', '--concurrency', String(CONCURRENCY), '--per-host', '8'];
  const { seconds, stdout } = timed('strace', [...args, process.execPath, ...herbdl]);
  const summary = JSON.parse(stdout.trim().split('\n').pop());
  if (summary.idsDone !== rows.length) throw new Error(`herbdl stored ${summary.idsDone} of ${rows.length}`);
  return summary.images / seconds;
}

const server = await startServer(101, 8, 0, 0, 0, '400x600');
try {
  const rows = urlsFor(server, SHEETS, 7_000_000_000);
  const best = { local: 0, slow: 0 };
  // Alternating, the best of each kept: the machines are shared and drift.
  for (let round = 0; round < ROUNDS; round++) {
    best.local = Math.max(best.local, run(rows, 0));
    best.slow = Math.max(best.slow, run(rows, DELAY_US));
  }
  console.log(`bench:slow-fs  ${fmt(SHEETS)} gbifIDs of one 400 x 600 sheet each, 8 loopback hosts, --concurrency ${CONCURRENCY} --per-host 8, best of ${ROUNDS}`);
  console.log(`machine        ${cpus().length} x ${cpus()[0]?.model.trim()}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}`);
  console.log(`renames as the disk does them (baseline)   ${fmt(best.local).padStart(5)} images/s`);
  console.log(`every rename ${fmt(DELAY_US / 1000, 1)} ms longer             ${fmt(best.slow).padStart(5)} images/s`);
  console.log(`ratio ${fmt(best.slow / best.local, 2)} (target >= 0.90)`);
} finally {
  server.stop();
}
