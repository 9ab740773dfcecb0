// npm run bench:status [-- --ids N] [-- --sqlite-only]
// Builds a ledger of N gbifIDs (default 10M, ~1.2 images each, 2,000 hosts)
// straight in SQL on the real schema, then times `herbdl status --json` (the
// whole process, start-up included) beside the baseline a naive status would
// be: counting states over the tables (full scans), measured in the same run.
// Then the same on PostgreSQL: the ledger moved there by `herbdl migrate`,
// with 16 live workers holding claims, as a cluster's status shows them.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { SCHEMA_VERSION } from '../dist/ledger/sqlite/schema.js';
import { databaseUrl, psql, removeSqlite, requireTools } from './harness.mjs';
import { startCluster } from './pg-cluster.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const i = process.argv.indexOf('--ids');
const ids = i > 0 ? Number(process.argv[i + 1]) : 10_000_000;
const out = join(here, 'out');
mkdirSync(out, { recursive: true });
// The schema version is in the name: a ledger cached by an older herbdl is built again, not migrated inside the timing.
const db = join(out, `status-${ids}-v${SCHEMA_VERSION}.db`);
const bin = join(here, '..', 'bin', 'herbdl');

if (!existsSync(db)) {
  process.stderr.write(`building a ledger of ${ids.toLocaleString('en-US')} gbifIDs in ${db} ...\n`);
  removeSqlite(db);
  // An empty ingest creates the real schema.
  const seed = join(out, 'header-only.txt');
  spawnSync('sh', ['-c', `printf 'gbifID\\tidentifier\\n' > '${seed}'`]);
  const r = spawnSync(process.execPath, [bin, 'ingest', seed, '--db', db, '--no-progress'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  const d = new Database(db);
  d.pragma('journal_mode = WAL');
  d.exec(`
    BEGIN;
    WITH RECURSIVE h(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM h WHERE n < 2000)
      INSERT INTO hosts(host) SELECT 'herbarium' || n || '.example.org' FROM h;
    INSERT INTO attributions(attribution_id, type, format, license, rights_holder, publisher) VALUES (1, 'StillImage', 'image/jpeg', 'CC BY 4.0', 'Herbarium', 'Herbarium');
    WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < ${ids})
      INSERT INTO images(gbif_id, image_index, url, url_hash, host_id, attribution_id, creator, state)
      SELECT 1000000000 + n, 0, 'https://herbarium' || (n % 2000 + 1) || '.example.org/' || n || '.jpg', n, n % 2000 + 1,
             1, '', CASE WHEN n % 10 < 6 THEN 1 WHEN n % 10 = 9 THEN 2 ELSE 0 END FROM g;
    INSERT INTO images(gbif_id, image_index, url, url_hash, host_id, attribution_id, creator, state)
      SELECT gbif_id, 1, url || '?2', url_hash + 1, host_id, attribution_id, creator, state FROM images WHERE gbif_id % 5 = 0;
    INSERT INTO ids(gbif_id, state) SELECT gbif_id, state FROM images WHERE image_index = 0;
    UPDATE totals SET value = (SELECT count(*) FROM ids WHERE state = 0) WHERE name = 'ids_pending';
    UPDATE totals SET value = (SELECT count(*) FROM ids WHERE state = 1) WHERE name = 'ids_done';
    UPDATE totals SET value = (SELECT count(*) FROM ids WHERE state = 2) WHERE name = 'ids_failed';
    UPDATE hosts SET images = c.images, pending = c.pending, done = c.done, failed = c.failed
      FROM (SELECT host_id, count(*) AS images, sum(state = 0) AS pending, sum(state = 1) AS done, sum(state = 2) AS failed FROM images GROUP BY host_id) AS c
      WHERE hosts.host_id = c.host_id;
    INSERT INTO error_counts(code, host_id, images) SELECT 'http_404', host_id, failed FROM hosts;
    COMMIT;`);
  d.pragma('wal_checkpoint(TRUNCATE)');
  d.close();
}

function best(fn, runs = 3) {
  let min = Infinity;
  let value;
  for (let k = 0; k < runs; k++) {
    const t = performance.now();
    value = fn();
    min = Math.min(min, performance.now() - t);
  }
  return { ms: min, value };
}

const herbdl = best(() => {
  const r = spawnSync(process.execPath, [bin, 'status', '--db', db, '--json'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  return JSON.parse(r.stdout);
});
const node = best(() => spawnSync(process.execPath, ['-e', '0']));
const naive = best(() => {
  const d = new Database(db, { readonly: true });
  const v = {
    ids: d.prepare('SELECT state, count(*) FROM ids GROUP BY state').all(),
    images: d.prepare('SELECT state, count(*) FROM images GROUP BY state').all(),
  };
  d.close();
  return v;
}, 1);

console.log(`bench:status  ${herbdl.value.ids.total.toLocaleString('en-US')} gbifIDs, ${herbdl.value.images.total.toLocaleString('en-US')} images, 2,000 hosts`);
console.log(`machine       ${cpus().length} x ${cpus()[0]?.model.trim()}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}`);
console.log(`herbdl status --json (whole process)   ${herbdl.ms.toFixed(0).padStart(7)} ms   (target < 1000 ms)`);
console.log(`node -e 0 (process start-up alone)     ${node.ms.toFixed(0).padStart(7)} ms`);
console.log(`naive GROUP BY state scans (baseline)  ${naive.ms.toFixed(0).padStart(7)} ms   (${(naive.ms / herbdl.ms).toFixed(1)}x herbdl)`);

if (!process.argv.includes('--sqlite-only')) {
  requireTools('bench:status', [['psql', 'postgresql-client']]);
  const cluster = await startCluster();
  try {
    const url = databaseUrl(cluster.url, 'status');
    const sql = (...commands) => {
      const r = spawnSync(...psql(url, ...commands), { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(r.stderr);
      return r;
    };
    spawnSync(...psql(cluster.url, 'CREATE DATABASE status'));
    const t0 = performance.now();
    const moved = spawnSync(process.execPath, [bin, 'migrate', '--from', db, '--to', url], { encoding: 'utf8' });
    if (moved.status !== 0) throw new Error(moved.stderr);
    const migrateS = (performance.now() - t0) / 1000;
    // Sixteen live workers, each holding 512 pending gbifIDs.
    const now = Date.now();
    sql(
      `INSERT INTO workers (machine, pid, since, heartbeat_at, lease_until, done, failed, images_per_second)
         SELECT 'node' || n, 1000 + n, ${now - 3_600_000}, ${now}, ${now + 3_600_000}, 10000 * n, 100 * n, 40 FROM generate_series(1, 16) n`,
      `UPDATE ids SET worker_id = w.worker_id FROM (SELECT gbif_id, row_number() OVER (ORDER BY gbif_id) AS r FROM ids WHERE state = 0 LIMIT ${16 * 512}) p
         JOIN workers w ON w.pid = 1000 + 1 + (p.r - 1) / 512 WHERE ids.gbif_id = p.gbif_id`,
      'ANALYZE',
    );
    const pg = best(() => {
      const r = spawnSync(process.execPath, [bin, 'status', '--db', url, '--json'], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(r.stderr);
      return JSON.parse(r.stdout);
    });
    const naivePg = best(() => sql('SELECT state, count(*) FROM ids GROUP BY state', 'SELECT state, count(*) FROM images GROUP BY state'), 1);
    const claimed = pg.value.workers.reduce((n, w) => n + w.claimed, 0);
    console.log(`\nPostgreSQL    the same ledger moved by herbdl migrate (${migrateS.toFixed(0)} s), ${pg.value.workers.length} live workers holding ${claimed.toLocaleString('en-US')} gbifIDs`);
    console.log(`herbdl status --json (whole process)   ${pg.ms.toFixed(0).padStart(7)} ms   (target < 1000 ms)`);
    console.log(`naive GROUP BY state scans (baseline)  ${naivePg.ms.toFixed(0).padStart(7)} ms   (${(naivePg.ms / pg.ms).toFixed(1)}x herbdl)`);
  } finally {
    cluster.stop();
  }
}
