// npm run bench:exclude [-- --ids 10000000]
// Excluding another dataset's gbifIDs from a plain list (one per line, not in
// order, as an export's IDs come), timed as a whole process beside
// `sqlite3 .import` of the same list into a table of the same shape, in the
// same run. Two cases: into a ledger before its ingest (what `ingest
// --exclude` does first), and into a ledger that holds 1M gbifIDs pending,
// a tenth of them listed (the IDs must leave the queue with every counter).
import { spawnSync } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { arg, bin, fmt, HEADER, removeSqlite, timed } from './harness.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const ids = arg('ids', 10_000_000);
const dir = join(here, 'out', 'exclude');
mkdirSync(dir, { recursive: true });
const FIRST_ID = 1_000_000_000;
const list = join(dir, `list-${ids}.txt`);

// A permutation of FIRST_ID .. FIRST_ID + ids - 1: unique, in no order.
if (!existsSync(list)) {
  const stride = 7_919_993; // prime, and not a factor of ids
  const out = createWriteStream(list);
  let chunk = '';
  for (let i = 0; i < ids; i++) {
    chunk += `${FIRST_ID + ((i * stride) % ids)}\n`;
    if (chunk.length > 1 << 20) {
      if (!out.write(chunk)) await new Promise((r) => out.once('drain', r));
      chunk = '';
    }
  }
  out.end(chunk);
  await new Promise((r) => out.once('finish', r));
}

function fresh(path) {
  removeSqlite(path);
  return path;
}

/**
 * `.import` into a bare table (as bench:ingest's baseline), the same followed
 * by an index on gbifID (the cheapest way sqlite3 makes the list something a
 * lookup can use, as bench:ingest:pg's baseline is `\copy` plus an index), or
 * into a table keyed by gbifID (the exclusion table's shape).
 */
function sqliteImport(kind) {
  const db = fresh(join(dir, 'baseline.db'));
  const index = kind === 'indexed' ? ['CREATE INDEX ids_gbif ON ids(gbif_id)'] : [];
  return timed('sqlite3', [db, `CREATE TABLE ids(gbif_id INTEGER${kind === 'keyed' ? ' PRIMARY KEY' : ''})`, `.import ${list} ids`, ...index]);
}

/** A ledger with `pending` gbifIDs ingested (0: only the schema), every tenth of them in the list. */
function ledger(pending) {
  const db = fresh(join(dir, `ledger-${pending}.db`));
  const file = join(dir, `multimedia-${pending}.txt`);
  const rows = Array.from({ length: pending }, (_, i) => `${FIRST_ID + (i % 10 === 0 ? i : ids + i)}\tStillImage\timage/jpeg\thttps://herbarium${i % 50}.example.org/${i}.jpg`);
  writeFileSync(file, [HEADER, ...rows].join('\n') + '\n');
  const r = spawnSync(process.execPath, [bin, 'ingest', file, '--db', db, '--no-progress'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  return db;
}

function herbdlExclude(db) {
  const t = timed(process.execPath, [bin, 'exclude', list, '--db', db, '--json', '--no-progress']);
  return { ...t, summary: JSON.parse(t.stdout.trim()) };
}

console.log(`machine: ${cpus().length} x ${cpus()[0]?.model.trim()}, ${Math.round(totalmem() / 2 ** 30)} GiB; node ${process.version}`);
console.log(`a list of ${fmt(ids)} gbifIDs in no order`);
const bare = sqliteImport('bare');
const indexed = sqliteImport('indexed');
const keyed = sqliteImport('keyed');
console.log(`sqlite3 .import: into a bare table ${fmt(bare.seconds, 1)} s, the same and an index on gbifID ${fmt(indexed.seconds, 1)} s, into a table keyed by gbifID ${fmt(keyed.seconds, 1)} s`);
for (const pending of [0, 1_000_000]) {
  const db = ledger(pending);
  const h = herbdlExclude(db);
  const label = pending === 0 ? 'before ingest' : `${fmt(pending)} pending`;
  console.log(
    `${label.padEnd(17)} herbdl exclude ${fmt(h.seconds, 1)} s (${fmt(h.summary.excluded)} taken out of the queue): ${fmt(bare.seconds / h.seconds, 2)}x the bare .import (target >= 1.0), ${fmt(indexed.seconds / h.seconds, 2)}x .import and index, ${fmt(keyed.seconds / h.seconds, 2)}x the keyed one; peak RSS ${fmt(h.rssMb)} MB`,
  );
}
