// npm run bench:recheck [-- --images 20000] [-- --sheet 1600x2400]
// Re-checking a stored collection against downloading it again, in the same
// run: --images herbarium sheets (1600 x 2400 by default, about 0.87 MB: what
// the IIIF ladder asks) from 16 loopback hosts that answer every request
// 100 ms late, with an ETag. `herbdl run` downloads them all (the baseline:
// downloading them again costs exactly this); then a tenth of the images
// change at their hosts, and `herbdl recheck --all` asks for every one with
// a conditional request. Printed: images/s of each (target: recheck >= 3x),
// and the bytes the hosts sent for each (target: recheck <= 15%).
import { mkdirSync, rmSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { arg, bin, CONCURRENCY, fmt, herbdlRun, ledgerFor, out, startServer, timed, urlsFor } from './harness.mjs';

const IMAGES = arg('images', 20_000);
const sheetArg = process.argv.indexOf('--sheet');
const SHEET = sheetArg > 0 ? process.argv[sheetArg + 1] : '1600x2400';
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });

console.log(`bench:recheck  ${fmt(IMAGES)} ${SHEET.replace('x', ' x ')} sheets, 16 hosts, every response +100 ms, --concurrency ${CONCURRENCY} --per-host 4`);
console.log(`machine        ${cpus().length} x ${cpus()[0]?.model.trim()}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}`);

const server = await startServer(141, 16, 100, 0, 0, SHEET);
try {
  const rows = urlsFor(server, IMAGES, 12_000_000_000);
  const ledger = { ...ledgerFor('recheck', rows), expected: IMAGES };
  await server.stats();
  const run = herbdlRun(ledger, ['--per-host', '4']);
  const runSent = await server.stats();
  server.child.stdin.write('version 1\n');
  const t = timed(process.execPath, [bin, 'recheck', '--db', ledger.db, '--out', ledger.images, '--allow-private-network', '--all', '--json', '--no-progress', '--concurrency', String(CONCURRENCY), '--per-host', '4']);
  const recheck = JSON.parse(t.stdout.trim().split('\n').pop());
  const recheckSent = await server.stats();
  const rate = recheck.checked / t.seconds;
  console.log(`\n   herbdl run, downloading them (baseline) ${fmt(run.rate).padStart(6)} images/s   ${fmt(runSent.bytesSent / 1e6).padStart(7)} MB sent by the hosts   peak RSS ${fmt(run.rssMb)} MB`);
  console.log(`   herbdl recheck --all                     ${fmt(rate).padStart(6)} images/s   ${fmt(recheckSent.bytesSent / 1e6).padStart(7)} MB sent by the hosts   peak RSS ${fmt(t.rssMb)} MB`);
  console.log(`   (${fmt(recheck.notModified)} not modified, ${fmt(recheck.sameBytes)} same bytes, ${fmt(recheck.changed)} changed and replaced, ${fmt(recheck.gone)} gone)`);
  console.log(`   ratio ${fmt(rate / run.rate, 2)}x the images/s of downloading again (target >= 3.00x); bytes ${fmt((100 * recheckSent.bytesSent) / runSent.bytesSent, 1)}% of a full download (target <= 15%)`);
} finally {
  server.stop();
  rmSync(out, { recursive: true, force: true });
}
