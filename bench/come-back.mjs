// npm run bench:come-back [-- --hosts 2000] [-- --back 40] [-- --slow 60000]
// Hosts that come back while the run goes on: 2,000 hosts refuse connections
// for the first --back seconds of a run, then answer; they hold 20,000
// gbifIDs spread over the export's keys, beside 60,000 on 8 hosts that
// answer in 100 ms (what keeps the run going). With a breaker window of 10 s
// and a cooldown of 20 s, every breaker opens, and the run must take the
// gbifIDs it set aside up again once the hosts answer its probes. The
// figure: seconds and gbifIDs left pending, beside the same run with every
// host up from the start (the least it can take). Peak RSS beside it.
import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { arg, bin, fmt, freePort, ledgerFor, out, timed } from './harness.mjs';
import { hostAddress } from './sheets.mjs';

const HOSTS = arg('hosts', 2_000);
const BACK = arg('back', 40);
const SLOW_IDS = arg('slow', 60_000);

/** One in four gbifIDs on a host that comes back, round-robin, so each host's lie all over the keys. */
function rows(port) {
  const list = [];
  let id = 7_000_000_000;
  for (let i = 0; i < SLOW_IDS; i++) {
    list.push([id++, `http://127.5.0.${(i % 8) + 1}:${port}/slow-${i}.jpg`]);
    if (i % 3 === 0) list.push([id++, `http://${hostAddress(1, (i / 3) % HOSTS, HOSTS)}:${port}/back-${i}.jpg`]);
  }
  return list;
}

async function run(name, backAfter) {
  const port = await freePort('127.5.0.1');
  const server = spawn(process.execPath, [join(fileURLToPath(new URL('.', import.meta.url)), 'come-back-server.mjs'), String(port), String(backAfter), String(HOSTS)], { stdio: ['pipe', 'pipe', 'inherit'] });
  await new Promise((resolve) => server.stdout.once('data', resolve));
  try {
    rmSync(join(out, name), { recursive: true, force: true });
    const ledger = ledgerFor(name, rows(port));
    const settings = ['--concurrency', '64', '--per-host', '8', '--timeout', '5', '--breaker-window', '10', '--breaker-cooldown', '20'];
    // The down hosts are still down while the export is ingested (a few seconds); the run starts now.
    const t = timed(process.execPath, [bin, 'run', '--db', ledger.db, '--out', ledger.images, '--allow-private-network', '--json', '--no-progress', ...settings]);
    const summary = JSON.parse(t.stdout.trim().split('\n').pop());
    return { ...t, summary };
  } finally {
    server.stdin.end();
  }
}

console.log(`bench:come-back  ${fmt(HOSTS)} hosts down for the first ${BACK} s (${fmt(SLOW_IDS / 3)} gbifIDs) beside 8 hosts answering in 100 ms (${fmt(SLOW_IDS)}); --breaker-window 10 --breaker-cooldown 20`);
console.log(`machine          ${cpus().length} x ${cpus()[0]?.model.trim()}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}`);
const up = await run('come-back-up', 0);
console.log(`every host up           ${fmt(up.seconds, 1).padStart(6)} s  (${fmt(up.summary.idsDone)} done, ${fmt(up.summary.pending)} pending; ${fmt(up.rssMb)} MB)`);
const back = await run('come-back', BACK);
const s = back.summary;
console.log(`hosts back after ${BACK} s   ${fmt(back.seconds, 1).padStart(6)} s  (${fmt(s.idsDone)} done, ${fmt(s.idsFailed)} failed (retries spent before the breakers opened), ${fmt(s.pending)} pending; ${s.hostsOpened.length} breakers opened; ${fmt(back.rssMb)} MB)`);
console.log(`   ratio ${fmt(back.seconds / up.seconds, 2)}x the run with every host up; ${fmt(s.pending)} gbifIDs left for a later run (target: 0)`);
