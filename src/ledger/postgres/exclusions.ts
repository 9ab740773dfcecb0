/**
 * Exclusions in a PostgreSQL ledger (see ../exclusions.ts for the rule).
 * Serialised with ingests by their advisory lock: an exclude waits for a
 * running ingest to end, and an ingest for an exclude. Workers are not
 * stopped: an ID a worker holds at that moment stays with it, and whatever
 * it records for that ID stands.
 */
import type pg from 'pg';
import { EXCLUSIONS_APPLIED, excludeStatements, MOVING, listedMovableSql, MOVABLE_STATES, restoreStatements, type ExcludeTally, type ImagesMoved, type UnexcludeTally } from '../exclusions.js';
import { STATE } from '../rows.js';
import { transaction } from './connect.js';
import { copyGbifIds } from './copy-binary.js';
import { probeByIndex } from './probes.js';
import { INGEST_LOCK } from './schema.js';

type Queryable = Pick<pg.PoolClient, 'query'>;

const SCOPE = 'exclude_now';

/**
 * Changes the gbifIDs in scope by `statements` (exclude's or undo's), if
 * there are any; returns how many. First their rows are locked, in gbifID
 * order as a worker's fence locks them, and those no longer in `states` (a
 * worker recorded one done since the scope was read) leave the scope: each
 * statement reads its own moment, and before, a gbifID a worker made done
 * meanwhile was counted as moving from pending and made excluded, done files
 * and all (ids_done counted one more than there were; its host's pending
 * count went below zero). Locked, none changes under the statements.
 */
async function changeScope(db: Queryable, statements: (scope: string, move: ImagesMoved) => string[], states: string): Promise<number> {
  // Counted, not returned: a row each for millions was the client's memory (40 to 70 MB more peak RSS at 1.6M).
  await db.query(`SELECT count(*) FROM (SELECT 1 FROM ids WHERE gbif_id IN (SELECT gbif_id FROM ${SCOPE}) ORDER BY gbif_id FOR NO KEY UPDATE) locked`);
  await db.query(`DELETE FROM ${SCOPE} s WHERE NOT EXISTS (SELECT 1 FROM ids i WHERE i.gbif_id = s.gbif_id AND i.state IN ${states})`);
  const n = (await db.query(`SELECT count(*)::bigint AS n FROM ${SCOPE}`)).rows[0].n as number;
  if (n > 0) for (const sql of statements(SCOPE, 'by_gbif_id')) await db.query(sql);
  return n;
}

async function createScope(db: Queryable): Promise<void> {
  await db.query(`CREATE TEMP TABLE ${SCOPE} (gbif_id bigint PRIMARY KEY) ON COMMIT DROP`);
  await db.query(`CREATE TEMP TABLE ${MOVING} (image_id bigint NOT NULL, host_id integer NOT NULL, state smallint NOT NULL, error_code text) ON COMMIT DROP`);
}

/** Where a batch's IDs are COPYed, to be joined with the ledger's tables. */
const BATCH = 'exclude_batch';

/** COPYs a batch of IDs into its own temporary table, dropped at commit. */
async function copyBatch(db: pg.PoolClient, ids: Float64Array): Promise<void> {
  await db.query(`CREATE TEMP TABLE ${BATCH} (gbif_id bigint NOT NULL) ON COMMIT DROP`);
  await copyGbifIds(db, BATCH, ids);
}

/**
 * In one transaction that holds the ingest lock, with the exclusions an
 * ingest left unapplied applied first: the batch COPYed and an empty scope,
 * for `work` to list or unlist the batch and fill the scope.
 */
async function withBatch<T>(pool: pg.Pool, ids: Float64Array, work: (db: pg.PoolClient) => Promise<T>): Promise<T> {
  return transaction(pool, async (db) => {
    await db.query('SELECT pg_advisory_xact_lock($1)', [INGEST_LOCK]);
    await applyPending(db);
    await copyBatch(db, ids);
    await createScope(db);
    return work(db);
  });
}

/** Lists a batch of gbifIDs (sorted, no repeats) and excludes those pending or failed, in one transaction. */
export async function excludeIds(pool: pg.Pool, ids: Float64Array): Promise<ExcludeTally> {
  return withBatch(pool, ids, async (db) => {
    // Measured at 16.2M gbifIDs, excluding 2M: 168 s with probes, 414 s with the planner's
    // scans. Not for undo, which took 275 and 288 s with probes against 214 s without.
    await probeByIndex(db);
    const listed = await db.query(`INSERT INTO exclusions (gbif_id) SELECT gbif_id FROM ${BATCH} ON CONFLICT DO NOTHING`);
    await db.query(`INSERT INTO ${SCOPE} (gbif_id) SELECT i.gbif_id FROM ${BATCH} b JOIN ids i ON i.gbif_id = b.gbif_id WHERE i.state IN ${MOVABLE_STATES}`);
    return { listed: listed.rowCount ?? 0, excluded: await changeScope(db, excludeStatements, MOVABLE_STATES) };
  });
}

/** Takes a batch of gbifIDs off the list and puts the excluded ones among them back in the queue, in one transaction. */
export async function unexcludeIds(pool: pg.Pool, ids: Float64Array): Promise<UnexcludeTally> {
  return withBatch(pool, ids, async (db) => {
    const unlisted = await db.query(`DELETE FROM exclusions e USING ${BATCH} b WHERE e.gbif_id = b.gbif_id`);
    await db.query(`INSERT INTO ${SCOPE} (gbif_id) SELECT i.gbif_id FROM ${BATCH} b JOIN ids i ON i.gbif_id = b.gbif_id WHERE i.state = ${STATE.excluded}`);
    return { unlisted: unlisted.rowCount ?? 0, restored: await changeScope(db, restoreStatements, `(${STATE.excluded})`) };
  });
}

/** Marks that an ingest is adding IDs the exclusions have not met yet (in its first transaction). */
export async function exclusionsPending(db: Queryable): Promise<void> {
  await db.query('INSERT INTO herbdl_meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = excluded.value', [EXCLUSIONS_APPLIED, '0']);
}

/** Inside a transaction holding the ingest lock: excludes every listed ID an ingest added, if one may have. Returns how many. */
export async function applyPending(db: Queryable): Promise<number> {
  const flag = (await db.query('SELECT value FROM herbdl_meta WHERE name = $1', [EXCLUSIONS_APPLIED])).rows[0]?.value;
  if (flag !== '0') return 0;
  await createScope(db);
  await db.query(listedMovableSql(SCOPE));
  const n = await changeScope(db, excludeStatements, MOVABLE_STATES);
  await db.query(`DROP TABLE ${SCOPE}, ${MOVING}`);
  await db.query('UPDATE herbdl_meta SET value = $1 WHERE name = $2', ['1', EXCLUSIONS_APPLIED]);
  return n;
}

/** applyPending in its own transaction (when a ledger is opened after an ingest died). */
export async function applyExclusions(pool: pg.Pool): Promise<number> {
  const flag = (await pool.query('SELECT value FROM herbdl_meta WHERE name = $1', [EXCLUSIONS_APPLIED])).rows[0]?.value;
  if (flag !== '0') return 0;
  return transaction(pool, async (db) => {
    await db.query('SELECT pg_advisory_xact_lock($1)', [INGEST_LOCK]);
    return applyPending(db);
  });
}
