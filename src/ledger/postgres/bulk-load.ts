/**
 * Bulk loads into PostgreSQL, as in SQLite (sqlite/bulk-load.ts): the first
 * ingest into an empty ledger COPYs images with no index, and what they
 * derive (indexes, the ids table) is built once when it ends, or by the next
 * open if it died first. Running the finisher twice is harmless.
 */
import type pg from 'pg';
import { transaction } from './connect.js';
import { DERIVED_INDEXES, IDS_INDEXES_NEW_ROWS_SKIP, INGEST_INDEXES, INGEST_LOCK, RUN_INDEXES } from './schema.js';

type Queryable = Pick<pg.PoolClient, 'query'>;

export async function bulkLoadPending(db: Queryable): Promise<boolean> {
  const row = await db.query("SELECT value FROM herbdl_meta WHERE name = 'derived_complete'");
  return row.rows[0]?.value === '0';
}

/** Where a bulk load that COPYs the ids table keeps its indexes' definitions until it builds them again. */
const IDS_INDEXES = 'bulk_ids_indexes';

/**
 * In the first transaction of a bulk load, so the flag and the rows commit
 * together. An empty ids table loses its key and indexes too: the load then
 * COPYs each gbifID as it first meets it, and the key is built once at the
 * end, by sorting (building the table from the images instead, a DISTINCT
 * over the whole images table and an insert, took 2.5 of 16 s at 2M rows).
 * Returns whether the load is to COPY ids.
 */
export async function beginBulkLoad(db: Queryable): Promise<boolean> {
  for (const index of Object.keys(DERIVED_INDEXES)) await db.query(`DROP INDEX IF EXISTS ${index}`);
  await db.query("UPDATE herbdl_meta SET value = '0' WHERE name = 'derived_complete'");
  if (!(await db.query('SELECT NOT EXISTS (SELECT 1 FROM ids) AS empty')).rows[0].empty) return false;
  // Partial indexes that no loaded row enters (each new ID is pending and unclaimed) stay: a row costs them only their predicate.
  const indexes = (
    await db.query(`SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'ids' AND schemaname = current_schema() AND indexname <> 'ids_pkey' AND NOT indexname = ANY($1::text[])`, [IDS_INDEXES_NEW_ROWS_SKIP])
  ).rows;
  await db.query('INSERT INTO herbdl_meta (name, value) VALUES ($1, $2)', [IDS_INDEXES, JSON.stringify(indexes.map((i) => i.indexdef as string))]);
  await db.query('ALTER TABLE ids DROP CONSTRAINT ids_pkey');
  for (const { indexname } of indexes) await db.query(`DROP INDEX ${indexname}`);
  return true;
}

/**
 * The key and indexes of an ids table the load COPYed. A gbifID whose rows
 * came back later in the file was COPYed once per run of rows: if the key
 * finds such repeats, they are dropped first. Returns how many IDs the table
 * holds, or undefined if this load did not COPY them.
 */
async function keyCopiedIds(db: Queryable, runs: number | undefined): Promise<number | undefined> {
  const kept = (await db.query('SELECT value FROM herbdl_meta WHERE name = $1', [IDS_INDEXES])).rows[0]?.value as string | undefined;
  if (kept === undefined) return undefined;
  let repeats = false;
  await db.query('SAVEPOINT ids_key');
  try {
    await db.query('ALTER TABLE ids ADD PRIMARY KEY (gbif_id)');
  } catch (err) {
    if ((err as { code?: string }).code !== '23505') throw err; // unique_violation: some ID came back
    await db.query('ROLLBACK TO SAVEPOINT ids_key');
    await db.query('DELETE FROM ids WHERE ctid IN (SELECT ctid FROM (SELECT ctid, row_number() OVER (PARTITION BY gbif_id) AS nth FROM ids) r WHERE nth > 1)');
    await db.query('ALTER TABLE ids ADD PRIMARY KEY (gbif_id)');
    repeats = true;
  }
  for (const indexdef of JSON.parse(kept) as string[]) await db.query(indexdef);
  await db.query('DELETE FROM herbdl_meta WHERE name = $1', [IDS_INDEXES]);
  // Without repeats, the table holds one row per run of rows the load counted.
  if (runs !== undefined && !repeats) return runs;
  return Number((await db.query('SELECT count(*) AS n FROM ids')).rows[0].n);
}

/**
 * An ID whose rows came back later in the file restarted at imageIndex 0:
 * its rows are renumbered in file order and repeated URLs dropped (with their
 * hosts' counts), as an incremental ingest would have numbered them.
 */
async function renumberRevisitedIds(db: Queryable): Promise<number> {
  await db.query(
    `CREATE TEMP TABLE revisited ON COMMIT DROP AS
       SELECT DISTINCT gbif_id FROM (SELECT gbif_id FROM images GROUP BY gbif_id, image_index HAVING count(*) > 1) r`,
  );
  const removed = await db.query(
    `WITH ranked AS (
       SELECT image_id, host_id, row_number() OVER (PARTITION BY i.gbif_id, i.url ORDER BY i.image_id) AS nth
       FROM images i JOIN revisited USING (gbif_id)),
     gone AS (DELETE FROM images WHERE image_id IN (SELECT image_id FROM ranked WHERE nth > 1) RETURNING host_id),
     counted AS (SELECT host_id, count(*) AS n FROM gone GROUP BY host_id),
     uncounted AS (UPDATE hosts h SET images = h.images - c.n, pending = h.pending - c.n FROM counted c WHERE h.host_id = c.host_id RETURNING c.n)
     SELECT coalesce(sum(n), 0)::bigint AS n FROM uncounted`,
  );
  await db.query(
    `UPDATE images i SET image_index = r.n FROM (
       SELECT image_id, row_number() OVER (PARTITION BY gbif_id ORDER BY image_id) - 1 AS n
       FROM images JOIN revisited USING (gbif_id)) r
     WHERE i.image_id = r.image_id AND i.image_index <> r.n`,
  );
  return removed.rows[0].n as number;
}

/**
 * The ids table from the loaded images. Into an empty table (the usual case:
 * a bulk load starts on an empty ledger) its indexes are dropped and built
 * after, by sorting: a third of the time of inserting 50M keys into them.
 */
async function addIds(db: Queryable, runs: number | undefined): Promise<number> {
  const copied = await keyCopiedIds(db, runs);
  if (copied !== undefined) return copied;
  const empty = (await db.query('SELECT NOT EXISTS (SELECT 1 FROM ids) AS empty')).rows[0].empty as boolean;
  if (!empty) {
    const added = await db.query('WITH added AS (INSERT INTO ids (gbif_id) SELECT DISTINCT gbif_id FROM images ORDER BY 1 ON CONFLICT DO NOTHING RETURNING 1) SELECT count(*)::bigint AS n FROM added');
    return added.rows[0].n as number;
  }
  const indexes = (await db.query("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'ids' AND schemaname = current_schema() AND indexname <> 'ids_pkey'")).rows;
  await db.query('ALTER TABLE ids DROP CONSTRAINT ids_pkey');
  for (const { indexname } of indexes) await db.query(`DROP INDEX ${indexname}`);
  const added = await db.query('INSERT INTO ids (gbif_id) SELECT DISTINCT gbif_id FROM images');
  await db.query('ALTER TABLE ids ADD PRIMARY KEY (gbif_id)');
  for (const { indexdef } of indexes) await db.query(indexdef);
  return added.rowCount ?? 0;
}

/**
 * Builds the indexes only runs need if a bulk load left them out. Workers
 * starting together must not build them twice at once: the first takes the
 * ingest lock and builds, the others wait for it and find them built.
 */
export async function ensureRunIndexes(pool: pg.Pool): Promise<void> {
  const present = await pool.query('SELECT count(*)::int AS n FROM pg_indexes WHERE schemaname = current_schema() AND indexname = ANY($1::text[])', [Object.keys(RUN_INDEXES)]);
  if (present.rows[0].n === Object.keys(RUN_INDEXES).length) return;
  await transaction(pool, async (db) => {
    await db.query("SET LOCAL maintenance_work_mem = '256MB'");
    await db.query('SELECT pg_advisory_xact_lock($1)', [INGEST_LOCK]);
    for (const create of Object.values(RUN_INDEXES)) await db.query(create);
  });
}

/**
 * Statistics of tables a bulk load (or migrate) filled, taken when it ends. A table
 * COPYed into has none until autovacuum comes to analyze it (within a minute
 * or two, never where autovacuum is off), and the planner's default guesses
 * are far off: `gbif_id = ANY(...)` over 256 claimed IDs is taken for the
 * whole table (each outcome of a run scanned every image, 4 s at 12M
 * images), and status's count of each worker's claims for one costly enough
 * to compile with JIT (170 ms of its 0.75 s at 16M gbifIDs). Sampled, so a
 * few seconds at 50M rows.
 */
export async function analyzeLoaded(db: Queryable): Promise<void> {
  for (const table of ['images', 'ids', 'hosts']) await db.query(`ANALYZE ${table}`);
}

/**
 * Index builds may use a large sort buffer: the load is what the connection
 * does. Set for the session (the side connection's build commits on its
 * own), and reset before the connection goes back to the pool.
 */
async function withSortMemory<T>(db: Queryable, work: () => Promise<T>): Promise<T> {
  await db.query("SET maintenance_work_mem = '256MB'");
  try {
    return await work();
  } finally {
    await db.query('RESET maintenance_work_mem').catch(() => {});
  }
}

async function buildIngestIndexes(db: Queryable): Promise<void> {
  for (const create of Object.values(INGEST_INDEXES)) await db.query(create);
}

export interface BulkLoadResult {
  readonly ids: number;
  readonly duplicates: number;
}

/**
 * Builds what a bulk load leaves out; `runs` as in SQLite (the runs of rows
 * the load saw: equal to the IDs found, no ID came back). With `side`, a
 * second connection, the images' index is built there while the ids table
 * is keyed here: two tables, two sorts at once (it commits on its own, and
 * building it again is a no-op, so a load that dies between is completed
 * as before).
 */
export async function completeBulkLoad(db: Queryable, runs?: number, side?: Queryable): Promise<BulkLoadResult> {
  const imagesIndexed = side ? withSortMemory(side, () => buildIngestIndexes(side)) : undefined;
  imagesIndexed?.catch(() => {}); // awaited below
  return withSortMemory(db, async () => {
    await db.query('BEGIN');
    try {
      if (!imagesIndexed) await buildIngestIndexes(db);
      const ids = await addIds(db, runs);
      await imagesIndexed;
      const duplicates = runs === ids ? 0 : await renumberRevisitedIds(db);
      await db.query("UPDATE totals SET value = value + $1 WHERE name = 'ids_pending'", [ids]);
      await analyzeLoaded(db);
      await db.query("UPDATE herbdl_meta SET value = '1' WHERE name = 'derived_complete'");
      await db.query('COMMIT');
      return { ids, duplicates };
    } catch (err) {
      await db.query('ROLLBACK').catch(() => {});
      throw err;
    }
  });
}
