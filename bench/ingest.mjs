// npm run bench:ingest [-- --rows N] [-- --shape herbarium|one-host] [-- --zip]
// Generates a realistic multimedia file (default 2M rows) of each shape (the
// herbarium export's, and one institution's: one host, 1 to 6 images per
// gbifID, query-string URLs), then times, in the same run and on the same
// file: `sqlite3 .import` into a bare table (the baseline), and `herbdl
// ingest` into a fresh ledger. Best of --rounds each. Prints rows/s and peak
// RSS for both, and the ratio. With --zip, the same file zipped as GBIF
// delivers it, too: `unzip -p | sqlite3 .import` (the baseline) beside
// `herbdl ingest` of the zip.
import { spawnSync } from 'node:child_process';
import { existsSync, linkSync, mkdirSync, rmSync, statSync } from 'node:fs';
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

const zipToo = process.argv.includes('--zip');
requireTools('bench:ingest', [['sqlite3', 'sqlite3'], ['/usr/bin/time', 'time'], ...(zipToo ? [['zip', 'zip'], ['unzip', 'unzip']] : [])]);

/** `file` zipped as the multimedia.txt of a download (zip's default level), made once. */
function zipped(file) {
  const zip = file.replace(/\.txt$/, '.zip');
  if (existsSync(zip)) return zip;
  const dir = `${zip}.d`;
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir);
  linkSync(file, join(dir, 'multimedia.txt'));
  const made = spawnSync('zip', ['-q', join('..', zip.split('/').pop()), 'multimedia.txt'], { cwd: dir });
  rmSync(dir, { recursive: true, force: true });
  if (made.status !== 0) throw new Error(`zip failed: ${made.stderr}`);
  return zip;
}

/** Best of `rounds` of the baseline and of herbdl on `input`; `baseline(input)` is timed. */
function compare(input, baseline) {
  const best = { sqlite: null, herbdl: null };
  let summary;
  for (let round = 0; round < rounds; round++) {
    const s = baseline(input);
    if (!best.sqlite || s.seconds < best.sqlite.seconds) best.sqlite = s;
    const ledger = join(out, 'bench.db');
    removeSqlite(ledger);
    const h = timed(process.execPath, [join(here, '..', 'bin', 'herbdl'), 'ingest', input, '--db', ledger, '--json', '--no-progress']);
    summary = JSON.parse(h.stdout);
    if (!best.herbdl || h.seconds < best.herbdl.seconds) best.herbdl = h;
    removeSqlite(ledger);
  }
  return { ...best, summary };
}

/** The baseline for a zip: its multimedia.txt inflated by `unzip -p` into `sqlite3 .import`. */
function timedUnzipImport(zip) {
  const db = join(out, 'import.db');
  removeSqlite(db);
  const t = timed('sh', ['-c', `unzip -p '${zip}' multimedia.txt | sqlite3 '${db}' -cmd '.mode tabs' '.import /dev/stdin media'`]);
  removeSqlite(db);
  return t;
}

const rate = (t) => Math.round(rows / t.seconds);
function report(best, what) {
  console.log(`${what.baseline.padEnd(28)}${rate(best.sqlite).toLocaleString('en-US').padStart(10)} rows/s  ${best.sqlite.seconds.toFixed(1)} s  peak RSS ${best.sqlite.rssMb.toFixed(0)} MB`);
  console.log(`${what.herbdl.padEnd(28)}${rate(best.herbdl).toLocaleString('en-US').padStart(10)} rows/s  ${best.herbdl.seconds.toFixed(1)} s  peak RSS ${best.herbdl.rssMb.toFixed(0)} MB`);
  console.log(`${what.ratio.padEnd(28)}${(best.sqlite.seconds / best.herbdl.seconds).toFixed(2)}x   (target >= 1.00x, peak RSS <= 200 MB)`);
}

for (const shape of shapes) {
  const file = join(out, `multimedia-${shape}-${rows}.txt`);
  if (!existsSync(file)) {
    process.stderr.write(`generating ${file} ...\n`);
    await generateMultimedia(file, { rows, shape });
  }
  const bytes = statSync(file).size;

  const plain = compare(file, (input) => timedImport(input, out));
  console.log(`\nbench:ingest  ${shape} shape, ${rows.toLocaleString('en-US')} rows, ${plain.summary.gbifIds.toLocaleString('en-US')} gbifIDs, ${(bytes / 1e6).toFixed(0)} MB, best of ${rounds}`);
  console.log(`machine       ${cpus().length} x ${cpus()[0]?.model.trim()}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}`);
  report(plain, { baseline: 'sqlite3 .import (baseline)', herbdl: 'herbdl ingest', ratio: 'ratio herbdl / .import' });
  if (zipToo) {
    const zip = zipped(file);
    const fromZip = compare(zip, timedUnzipImport);
    console.log(`from a zip of it (${(statSync(zip).size / 1e6).toFixed(0)} MB, zip's default level)`);
    report(fromZip, { baseline: 'unzip -p | .import (baseline)', herbdl: 'herbdl ingest of the zip', ratio: 'ratio herbdl / baseline' });
  }
}
