// npm run bench:ingest:pg [-- --rows N] [-- --rounds N]
// herbdl ingest into PostgreSQL beside the baseline the issue names, on the
// same file, the same server and in the same run: psql's \copy of the file
// into a table of its columns, then an index on gbifID (the same rows made
// queryable by ID). The server is a throwaway cluster with fsync on
// (bench/pg-cluster.mjs). Prints rows/s, peak RSS and the ratio.
import { spawnSync } from 'node:child_process';
import { mkdirSync, statSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { herbariumFile } from './gen-multimedia.mjs';
import { arg, databaseUrl, psql, requireTools, timed, timedCopyBaseline } from './harness.mjs';
import { startCluster } from './pg-cluster.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const rows = arg('rows', 2_000_000);
const rounds = arg('rounds', 2);
const out = join(here, 'out');
mkdirSync(out, { recursive: true });
requireTools('bench:ingest:pg', [['psql', 'postgresql-client'], ['/usr/bin/time', 'time']]);

const file = await herbariumFile(out, rows);
const cluster = await startCluster('-c fsync=on -c synchronous_commit=on -c full_page_writes=on -c shared_buffers=256MB -c max_wal_size=4GB');
const database = (name) => databaseUrl(cluster.url, name);

try {
  const best = { psql: null, herbdl: null };
  let summary;
  for (let round = 0; round < rounds; round++) {
    // Gone before herbdl's turn: a file of the real export's size (59M rows, 18 GB) then needs room for one database at a time.
    const p = timedCopyBaseline(cluster.url, file);
    if (!best.psql || p.seconds < best.psql.seconds) best.psql = p;
    spawnSync(...psql(cluster.url, 'DROP DATABASE IF EXISTS herbdl', 'CREATE DATABASE herbdl'));
    const h = timed(process.execPath, [join(here, '..', 'bin', 'herbdl'), 'ingest', file, '--db', database('herbdl'), '--json', '--no-progress']);
    summary = JSON.parse(h.stdout);
    if (!best.herbdl || h.seconds < best.herbdl.seconds) best.herbdl = h;
  }
  const rate = (t) => Math.round(rows / t.seconds).toLocaleString('en-US').padStart(10);
  console.log(`\nbench:ingest:pg  herbarium shape, ${rows.toLocaleString('en-US')} rows, ${summary.gbifIds.toLocaleString('en-US')} gbifIDs, ${(statSync(file).size / 1e6).toFixed(0)} MB, best of ${rounds}, PostgreSQL with fsync on`);
  console.log(`machine          ${cpus().length} x ${cpus()[0]?.model.trim()}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}`);
  console.log(`psql \\copy + index on gbifID (baseline)  ${rate(best.psql)} rows/s  ${best.psql.seconds.toFixed(1)} s`);
  console.log(`herbdl ingest                            ${rate(best.herbdl)} rows/s  ${best.herbdl.seconds.toFixed(1)} s  peak RSS ${best.herbdl.rssMb.toFixed(0)} MB`);
  console.log(`ratio herbdl / baseline                  ${(best.psql.seconds / best.herbdl.seconds).toFixed(2)}x   (target >= 1.00x, peak RSS <= 200 MB)`);
} finally {
  cluster.stop();
}
