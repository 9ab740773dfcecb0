// npm run bench:labels [-- --rows 500000] [-- --rounds 2]
// `herbdl labels` of a GBIF occurrence file of the real shape (the 259
// columns of a download's occurrence.txt, about 1.3 KB a row: the rows of the
// real sample in fixtures/, repeated with new gbifIDs, in no order) into a ledger that
// holds those gbifIDs, on SQLite and on PostgreSQL, each beside what a user
// would run to make the same file queryable by gbifID, in the same run:
// `sqlite3 .import` of it and an index on gbifID; psql's `\copy` of it and an
// index on gbifID. Best of --rounds each; rows/s, peak RSS, the ratio.
import { spawnSync } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import { cpus, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { arg, bin, databaseUrl, fmt, HEADER, psql, removeSqlite, requireTools, timed, timedCopyBaseline } from './harness.mjs';
import { startCluster } from './pg-cluster.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const rows = arg('rows', 500_000);
const rounds = arg('rounds', 2);
const out = join(here, 'out', 'labels');
mkdirSync(out, { recursive: true });
requireTools('bench:labels', [['sqlite3', 'sqlite3'], ['psql', 'postgresql-client'], ['/usr/bin/time', 'time']]);
const FIRST_ID = 3_000_000_000;

/** The i-th gbifID of the occurrence file: a permutation of 0 .. rows - 1 that scatters neighbours (2,654,435,761 is a prime, so it shares no factor with --rows). */
const shuffled = (i) => Number((BigInt(i) * 2_654_435_761n) % BigInt(rows));

/** The occurrence file and a multimedia file of the same gbifIDs (one image each), written once. */
async function files() {
  const occurrence = join(out, `occurrence-${rows}-shuffled.txt`);
  const multimedia = join(out, `multimedia-${rows}.txt`);
  if (!existsSync(occurrence)) {
    const sample = gunzipSync(readFileSync(join(here, '..', 'fixtures', 'samples', 'gbif', 'rgbif-0258360-220831081235567', 'occurrence.txt.gz'))).toString('utf8');
    const [header, ...lines] = sample.split('\n').filter((l) => l !== '');
    const rests = lines.map((l) => l.slice(l.indexOf('\t')));
    const temp = `${occurrence}.part`;
    const file = createWriteStream(temp);
    file.write(header + '\n');
    for (let i = 0; i < rows; i++) {
      // gbifIDs in no order (a download's occurrence file is not sorted by gbifID): a permutation of the multimedia file's.
      if (!file.write(`${FIRST_ID + shuffled(i)}${rests[i % rests.length]}\n`)) await once(file, 'drain');
    }
    file.end();
    await once(file, 'close');
    renameSync(temp, occurrence);
  }
  if (!existsSync(multimedia)) {
    const lines = [HEADER];
    for (let i = 0; i < rows; i++) lines.push(`${FIRST_ID + i}\tStillImage\timage/jpeg\thttps://herbarium${i % 50}.example.org/${i}.jpg`);
    writeFileSync(multimedia, lines.join('\n') + '\n');
  }
  return { occurrence, multimedia };
}

function run(args) {
  const r = spawnSync(process.execPath, [bin, ...args, '--no-progress'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
}

/** Best of `rounds` of `f`, each a timed child process. */
function best(f) {
  let kept;
  for (let round = 0; round < rounds; round++) {
    const t = f();
    if (!kept || t.seconds < kept.seconds) kept = t;
  }
  return kept;
}

const { occurrence, multimedia } = await files();
const mb = statSync(occurrence).size / 1e6;
console.log(`machine: ${cpus().length} x ${cpus()[0]?.model.trim()}, ${Math.round(totalmem() / 2 ** 30)} GiB; node ${process.version}`);
console.log(`occurrence file: ${fmt(rows)} rows of 259 columns, ${fmt(mb)} MB; the default 10 fields kept`);

// SQLite.
const db = join(out, 'labels.db');
removeSqlite(db);
run(['ingest', multimedia, '--db', db]);
const herbdlSqlite = best(() => timed(process.execPath, [bin, 'labels', occurrence, '--db', db, '--json', '--no-progress']));
const labelled = JSON.parse(herbdlSqlite.stdout).labelled;
if (labelled !== rows) throw new Error(`labelled ${labelled} of ${rows}`);
const importDb = join(out, 'import.db');
const sqliteBaseline = best(() => {
  removeSqlite(importDb);
  return timed('sqlite3', [importDb, '-cmd', '.mode tabs', `.import ${occurrence} occurrence`, 'CREATE INDEX occurrence_by_id ON occurrence(gbifID);']);
});
removeSqlite(importDb);
removeSqlite(db);
const line = (name, t, base, baseName) =>
  console.log(`${name}: herbdl labels ${fmt(rows / t.seconds)} rows/s (${fmt(t.seconds, 1)} s), peak RSS ${fmt(t.rssMb)} MB; ${baseName} ${fmt(rows / base.seconds)} rows/s (${fmt(base.seconds, 1)} s): ${fmt(base.seconds / t.seconds, 2)}x`);
line('SQLite    ', herbdlSqlite, sqliteBaseline, 'sqlite3 .import + index on gbifID');

// PostgreSQL.
const cluster = await startCluster('-c fsync=on -c synchronous_commit=on -c full_page_writes=on -c shared_buffers=256MB -c max_wal_size=4GB');
try {
  const ledger = databaseUrl(cluster.url, 'ledger');
  spawnSync(...psql(cluster.url, 'CREATE DATABASE ledger'));
  run(['ingest', multimedia, '--db', ledger]);
  const herbdlPg = best(() => timed(process.execPath, [bin, 'labels', occurrence, '--db', ledger, '--json', '--no-progress']));
  const pgBaseline = best(() => timedCopyBaseline(cluster.url, occurrence));
  line('PostgreSQL', herbdlPg, pgBaseline, 'psql \\copy + index on gbifID');
} finally {
  cluster.stop();
}
