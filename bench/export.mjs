// npm run bench:export [-- --rows N] [-- --rounds N]
// Exporting a whole ledger: the herbarium file of bench:ingest (default 2M
// rows) ingested into a fresh ledger, then `herbdl export --state all` timed
// as a whole process, as CSV and as Parquet, beside the baseline measured in
// the same run: `sqlite3 -csv` of the same query (the ledger's own export
// SQL, from rows.ts), which is what reading the rows costs with nothing
// made of them. Best of --rounds each. Prints images/s, seconds and peak RSS.
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, statSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { exportColumns, STATE } from '../dist/ledger/rows.js';
import { herbariumFile } from './gen-multimedia.mjs';
import { arg, bin, fmt, removeSqlite, requireTools, timed } from './harness.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const rows = arg('rows', 2_000_000);
const rounds = arg('rounds', 2);
const out = join(here, 'out');
const dir = join(out, 'export');
mkdirSync(dir, { recursive: true });
requireTools('bench:export', [['sqlite3', 'sqlite3'], ['/usr/bin/time', 'time']]);

const file = await herbariumFile(out, rows);
const db = join(dir, 'ledger.db');
removeSqlite(db);
const ingest = spawnSync(process.execPath, [bin, 'ingest', file, '--db', db, '--json', '--no-progress'], { encoding: 'utf8' });
if (ingest.status !== 0) throw new Error(ingest.stderr);
const images = JSON.parse(ingest.stdout).images;

const { select, from, order } = exportColumns(STATE.done);
const query = `SELECT ${select} FROM ${from} ORDER BY ${order}`;
// Each side writes its own file, so all three pay for writing what they make.
const runs = [
  ['sqlite3 -csv (baseline)', 'baseline.csv', (path) => timed('sh', ['-c', `sqlite3 -csv -header '${db}' "$0" > '${path}'`, query])],
  ['herbdl export (CSV)', 'export.csv', (path) => timed(process.execPath, [bin, 'export', '--db', db, '--state', 'all', '--out-file', path])],
  ['herbdl export (Parquet)', 'export.parquet', (path) => timed(process.execPath, [bin, 'export', '--db', db, '--state', 'all', '--format', 'parquet', '--out-file', path])],
];
const best = {};
for (let round = 0; round < rounds; round++) {
  for (const [name, file, run] of round % 2 === 0 ? runs : [...runs].reverse()) {
    const path = join(dir, file);
    rmSync(path, { force: true });
    const t = run(path);
    if (!best[name] || t.seconds < best[name].seconds) best[name] = { ...t, mb: statSync(path).size / 1e6 };
  }
}
const base = best['sqlite3 -csv (baseline)'];
console.log(`\nbench:export  ${fmt(images)} images (the ${fmt(rows)}-row herbarium file's ledger, --state all), best of ${rounds}`);
console.log(`machine       ${cpus().length} x ${cpus()[0]?.model.trim()}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}`);
for (const [name, t] of Object.entries(best)) {
  const ratio = t === base ? '' : `   ${(base.seconds / t.seconds).toFixed(2)}x of the baseline`;
  console.log(`${name.padEnd(26)} ${fmt(images / t.seconds).padStart(9)} images/s  ${t.seconds.toFixed(1).padStart(6)} s  ${fmt(t.mb).padStart(6)} MB written  peak RSS ${fmt(t.rssMb)} MB${ratio}`);
}
rmSync(dir, { recursive: true, force: true });
