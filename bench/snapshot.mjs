// npm run bench:snapshot [-- --rows N] [-- --rounds N] [-- --sqlite-only]
// A newer export ingested as a snapshot (`herbdl ingest --snapshot`) into the
// ledger of the older one, what a lab does with GBIF's weekly re-crawls: the
// herbarium file of bench:ingest (2M rows) and a newer export made from it
// (gen-multimedia.mjs's newerExport: 1% of gbifIDs gone, 0.5% of images
// moved, images and gbifIDs added, the same order). Beside it, in the same
// run, the baseline of bench:ingest for the same newer file: `sqlite3
// .import` into a bare table; on PostgreSQL (a throwaway cluster, fsync on),
// psql's `\copy` plus an index on gbifID, and the images table's size before
// and after (a snapshot that rewrote every row would double it). Each
// snapshot starts from a copy of the older file's ledger. Best of --rounds.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, statSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { herbariumFile, newerExport } from './gen-multimedia.mjs';
import { arg, databaseUrl, fmt, psql, requireTools, removeSqlite, timed, timedCopyBaseline, timedImport } from './harness.mjs';
import { startCluster } from './pg-cluster.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const bin = join(here, '..', 'bin', 'herbdl');
const rows = arg('rows', 2_000_000);
const rounds = arg('rounds', 2);
const sqliteOnly = process.argv.includes('--sqlite-only');
const out = join(here, 'out');
mkdirSync(out, { recursive: true });
requireTools('bench:snapshot', [['sqlite3', 'sqlite3'], ['/usr/bin/time', 'time'], ...(sqliteOnly ? [] : [['psql', 'postgresql-client']])]);

const older = await herbariumFile(out, rows);
const newer = join(out, `multimedia-herbarium-${rows}-newer.txt`);
if (!existsSync(newer)) {
  process.stderr.write(`generating ${newer} ...\n`);
  await newerExport(older, newer);
}
const newerRows = spawnSync('wc', ['-l', newer], { encoding: 'utf8' }).stdout.trim().split(/\s+/)[0] - 1;

const json = (t) => JSON.parse(t.stdout);
const better = (best, t) => (!best || t.seconds < best.seconds ? t : best);
const rate = (t) => fmt(Math.round(newerRows / t.seconds)).padStart(10);
const changes = (s) => `${fmt(s.gbifIds)} gbifIDs and ${fmt(s.images)} images added, ${fmt(s.removedIds)} gbifIDs and ${fmt(s.removedImages)} images removed, ${fmt(s.reopened)} reopened`;

console.log(`\nbench:snapshot  ${fmt(newerRows)} rows (${(statSync(newer).size / 1e6).toFixed(0)} MB) as a snapshot into the ledger of ${fmt(rows)}, best of ${rounds}`);
console.log(`machine         ${cpus().length} x ${cpus()[0]?.model.trim()}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}`);

// SQLite.
const base = join(out, 'snapshot-base.db');
removeSqlite(base);
const first = timed(process.execPath, [bin, 'ingest', older, '--db', base, '--json', '--no-progress']);
let sqlite = { baseline: null, herbdl: null, summary: null };
for (let round = 0; round < rounds; round++) {
  sqlite.baseline = better(sqlite.baseline, timedImport(newer, out));
  const ledger = join(out, 'snapshot.db');
  removeSqlite(ledger);
  copyFileSync(base, ledger);
  const h = timed(process.execPath, [bin, 'ingest', '--snapshot', newer, '--db', ledger, '--json', '--no-progress']);
  sqlite.summary = json(h);
  sqlite.herbdl = better(sqlite.herbdl, h);
  removeSqlite(ledger);
}
removeSqlite(base);
console.log(`\nSQLite: ${changes(sqlite.summary)}`);
console.log(`  sqlite3 .import of the newer file (baseline)  ${rate(sqlite.baseline)} rows/s  ${sqlite.baseline.seconds.toFixed(1)} s`);
console.log(`  herbdl ingest --snapshot                      ${rate(sqlite.herbdl)} rows/s  ${sqlite.herbdl.seconds.toFixed(1)} s  peak RSS ${sqlite.herbdl.rssMb.toFixed(0)} MB`);
console.log(`  (the older file's first ingest: ${first.seconds.toFixed(1)} s, ${first.rssMb.toFixed(0)} MB)`);
console.log(`  ratio herbdl / .import                        ${(sqlite.baseline.seconds / sqlite.herbdl.seconds).toFixed(2)}x   (ingest's target >= 1.00x, peak RSS <= 200 MB)`);

if (!sqliteOnly) {
  const cluster = await startCluster('-c fsync=on -c synchronous_commit=on -c full_page_writes=on -c shared_buffers=256MB -c max_wal_size=4GB');
  const database = (name) => databaseUrl(cluster.url, name);
  const size = (name) => Number(spawnSync('psql', ['-X', '-q', '-t', '-A', database(name), '-c', "SELECT pg_relation_size('images')"], { encoding: 'utf8' }).stdout.trim());
  try {
    spawnSync(...psql(cluster.url, 'CREATE DATABASE base'));
    const pgFirst = timed(process.execPath, [bin, 'ingest', older, '--db', database('base'), '--json', '--no-progress']);
    const pg = { baseline: null, herbdl: null, summary: null, before: size('base'), after: 0 };
    for (let round = 0; round < rounds; round++) {
      pg.baseline = better(pg.baseline, timedCopyBaseline(cluster.url, newer));
      spawnSync(...psql(cluster.url, 'DROP DATABASE IF EXISTS snapshot', 'CREATE DATABASE snapshot TEMPLATE base'));
      const h = timed(process.execPath, [bin, 'ingest', '--snapshot', newer, '--db', database('snapshot'), '--json', '--no-progress']);
      pg.summary = json(h);
      pg.herbdl = better(pg.herbdl, h);
      pg.after = size('snapshot');
    }
    console.log(`\nPostgreSQL: ${changes(pg.summary)}`);
    console.log(`  psql \\copy + index on gbifID (baseline)       ${rate(pg.baseline)} rows/s  ${pg.baseline.seconds.toFixed(1)} s`);
    console.log(`  herbdl ingest --snapshot                      ${rate(pg.herbdl)} rows/s  ${pg.herbdl.seconds.toFixed(1)} s  peak RSS ${pg.herbdl.rssMb.toFixed(0)} MB`);
    console.log(`  (the older file's first ingest: ${pgFirst.seconds.toFixed(1)} s, ${pgFirst.rssMb.toFixed(0)} MB)`);
    console.log(`  ratio herbdl / baseline                       ${(pg.baseline.seconds / pg.herbdl.seconds).toFixed(2)}x   (ingest's target >= 1.00x, peak RSS <= 200 MB)`);
    console.log(`  images table                                  ${(pg.before / 1e6).toFixed(0)} MB before, ${(pg.after / 1e6).toFixed(0)} MB after`);
  } finally {
    cluster.stop();
  }
}
