// npm run bench:ingest [-- --rows N] [-- --shape herbarium|one-host]
// Generates a realistic multimedia file (default 2M rows) of each shape (the
// herbarium export's, and one institution's: one host, 1 to 6 images per
// gbifID, query-string URLs), then times, in the same run and on the same
// file: `sqlite3 .import` into a bare table (the baseline), and `herbdl
// ingest` into a fresh ledger. Best of --rounds each. Prints rows/s and peak
// RSS for both, and the ratio.
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateMultimedia } from './gen-multimedia.mjs';
import { arg, removeSqlite, requireTools, timed, timedImport } from './harness.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const rows = arg('rows', 2_000_000);
const rounds = arg('rounds', 2);
const shapeArg = process.argv.indexOf('--shape');
const shapes = shapeArg > 0 ? [process.argv[shapeArg + 1]] : ['herbarium', 'one-host'];
const out = join(here, 'out');
mkdirSync(out, { recursive: true });

requireTools('bench:ingest', [['sqlite3', 'sqlite3'], ['/usr/bin/time', 'time']]);



for (const shape of shapes) {
  const file = join(out, `multimedia-${shape}-${rows}.txt`);
  if (!existsSync(file)) {
    process.stderr.write(`generating ${file} ...\n`);
    await generateMultimedia(file, { rows, shape });
  }
  const bytes = statSync(file).size;

  const best = { sqlite: null, herbdl: null };
  let summary;
  for (let round = 0; round < rounds; round++) {
    const s = timedImport(file, out);
    if (!best.sqlite || s.seconds < best.sqlite.seconds) best.sqlite = s;

    const ledger = join(out, 'bench.db');
    removeSqlite(ledger);
    const h = timed(process.execPath, [join(here, '..', 'bin', 'herbdl'), 'ingest', file, '--db', ledger, '--json', '--no-progress']);
    summary = JSON.parse(h.stdout);
    if (!best.herbdl || h.seconds < best.herbdl.seconds) best.herbdl = h;
    removeSqlite(ledger);
  }

  const rate = (t) => Math.round(rows / t.seconds);
  console.log(`\nbench:ingest  ${shape} shape, ${rows.toLocaleString('en-US')} rows, ${summary.gbifIds.toLocaleString('en-US')} gbifIDs, ${(bytes / 1e6).toFixed(0)} MB, best of ${rounds}`);
  console.log(`machine       ${cpus().length} x ${cpus()[0]?.model.trim()}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}`);
  console.log(`sqlite3 .import (baseline)  ${rate(best.sqlite).toLocaleString('en-US').padStart(10)} rows/s  ${best.sqlite.seconds.toFixed(1)} s  peak RSS ${best.sqlite.rssMb.toFixed(0)} MB`);
  console.log(`herbdl ingest               ${rate(best.herbdl).toLocaleString('en-US').padStart(10)} rows/s  ${best.herbdl.seconds.toFixed(1)} s  peak RSS ${best.herbdl.rssMb.toFixed(0)} MB`);
  console.log(`ratio herbdl / .import      ${(best.sqlite.seconds / best.herbdl.seconds).toFixed(2)}x   (target >= 1.00x, peak RSS <= 200 MB)`);
}
