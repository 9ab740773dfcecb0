/** Snapshots on a shared ledger (see ../snapshots.ts for the rule): marking what a batch lists, and applying the snapshot at its end. */
import type pg from 'pg';
import type { IngestTally } from '../ledger.js';
import { IMAGES_REMOVED, NO_TALLY, STATE, TOTAL_NAME } from '../rows.js';
import { LedgerError, SnapshotRefusedError } from '../../errors.js';
import { DROP_WORK_TABLES, REMOVED_COUNTS_SQL, REMOVING_SQL, removeUnlistedSteps, SNAPSHOT_NUMBER, UNLISTED } from '../snapshots.js';
import type { ListedImages } from '../listed-images.js';
import { copyInt8Column } from './copy-binary.js';

export { SNAPSHOT_NUMBER };

/**
 * Marks in `listed` the ledger's images the staged rows list (ingest_matched,
 * made by the merge in the caller's transaction), their ids sent back as one
 * bytea of 8-byte integers. One an earlier snapshot removed is back: pending
 * again, with its gbifID (a done one reopened, a removed one back) and every
 * counter. Returns how many came back. Writes no row but those.
 */
export async function listStaged(db: pg.PoolClient, listed: ListedImages): Promise<number> {
  // Rows of up to 8,192 ids: one row of a batch's quarter million made a message of 4 MB
  // (hex) that the driver gathered in a buffer twice its size, 35 MB more peak RSS at 2M rows.
  const found = await db.query(
    `SELECT string_agg(int8send(known_id), ''::bytea) AS ids, count(*) FILTER (WHERE known_state = ${STATE.removed})::int AS back
     FROM (SELECT known_id, known_state, row_number() OVER () / 8192 AS part FROM ingest_matched WHERE known_id IS NOT NULL) m GROUP BY part`,
  );
  let removed = 0;
  for (const { ids, back } of found.rows as { ids: Buffer; back: number }[]) {
    for (let at = 0; at < ids.length; at += 8) listed.mark(ids.readUInt32BE(at) * 4_294_967_296 + ids.readUInt32BE(at + 4));
    removed += back;
  }
  if (removed === 0) return 0;
  // By (gbif_id, url): a ledger no run has opened yet has no index on image_id.
  const back = await db.query(
    `UPDATE images i SET state = ${STATE.pending}, next_attempt_at = NULL FROM ingest_matched m
     WHERE m.known_state = ${STATE.removed} AND i.gbif_id = m.gbif_id AND i.url = m.url RETURNING i.gbif_id, i.host_id`,
  );
  if (back.rows.length === 0) return 0;
  const hosts = new Map<number, number>();
  for (const r of back.rows) hosts.set(r.host_id as number, (hosts.get(r.host_id as number) ?? 0) + 1);
  const hostIds = [...hosts.keys()].sort((a, b) => a - b);
  await db.query('UPDATE hosts h SET images = h.images + c.n, pending = h.pending + c.n FROM unnest($1::int[], $2::bigint[]) AS c(host_id, n) WHERE h.host_id = c.host_id', [
    hostIds,
    hostIds.map((id) => hosts.get(id)),
  ]);
  const ids = [...new Set(back.rows.map((r) => r.gbif_id as number))];
  const moved = await db.query(
    `WITH before AS (SELECT gbif_id, state FROM ids WHERE gbif_id = ANY($1::bigint[]) AND state IN (${STATE.done}, ${STATE.removed}) FOR UPDATE),
     moved AS (UPDATE ids SET state = ${STATE.pending}, next_attempt_at = NULL FROM before WHERE ids.gbif_id = before.gbif_id RETURNING before.state)
     SELECT state, count(*)::bigint AS n FROM moved GROUP BY state`,
    [ids],
  );
  let pending = 0;
  for (const r of moved.rows) {
    await db.query('UPDATE totals SET value = value - $1 WHERE name = $2', [r.n, TOTAL_NAME[r.state as number]]);
    pending += r.n as number;
  }
  if (pending > 0) await db.query('UPDATE totals SET value = value + $1 WHERE name = $2', [pending, TOTAL_NAME[STATE.pending]]);
  await db.query('UPDATE totals SET value = value - $1 WHERE name = $2', [back.rows.length, IMAGES_REMOVED]);
  return back.rows.length;
}

/**
 * Removes what snapshot `gen` did not list (the images `listed` lacks), in
 * one transaction, and notes `gen` as applied; what it did, as a tally. No
 * `listed` (the ledger was empty before this snapshot: it listed everything)
 * only notes the number.
 */
export async function removeUnlisted(db: pg.PoolClient, gen: number, listed: ListedImages | undefined, maxRemoval = 1): Promise<IngestTally> {
  await db.query('BEGIN');
  try {
    let tally = NO_TALLY;
    if (listed) {
      await refuseLiveWorkers(db);
      await copyUnlisted(db, listed);
      const steps = removeUnlistedSteps();
      for (const sql of steps.read) await db.query(sql);
      const share = (await db.query(REMOVING_SQL)).rows[0] as { removing: string; images: string };
      const [removing, images] = [Number(share.removing), Number(share.images)];
      if (images > 0 && removing > maxRemoval * images) throw new SnapshotRefusedError(removing, images, maxRemoval);
      for (const sql of steps.change) await db.query(sql);
      const counts = (await db.query(REMOVED_COUNTS_SQL)).rows[0] as { images: string; ids: string; reopened: string };
      for (const sql of DROP_WORK_TABLES) await db.query(sql);
      tally = { ...NO_TALLY, removedImages: Number(counts.images), removedIds: Number(counts.ids), reopened: Number(counts.reopened) };
    }
    await db.query('UPDATE herbdl_meta SET value = $1 WHERE name = $2', [String(gen), SNAPSHOT_NUMBER]);
    await db.query('COMMIT');
    return tally;
  } catch (err) {
    await db.query('ROLLBACK').catch(() => {});
    // Refused: nothing removed, the number noted all the same (as in SQLite: sqlite/snapshots.ts).
    if (err instanceof SnapshotRefusedError) await db.query('UPDATE herbdl_meta SET value = $1 WHERE name = $2', [String(gen), SNAPSHOT_NUMBER]);
    throw err;
  }
}

/**
 * No worker may hold a gbifID the removal takes away: it would record it
 * done, and a removed gbifID would come back done, its counters astray.
 * `ingest --snapshot` refuses to start beside a live worker (cli ingest.ts),
 * but one may start while the newer file is read (minutes at 59M rows): so
 * the removal asks again, holding the workers table against new ones (a
 * worker that starts now waits for the removal's commit, then finds the
 * removed gbifIDs gone), and refuses, removing nothing.
 */
async function refuseLiveWorkers(db: pg.PoolClient): Promise<void> {
  await db.query('LOCK TABLE workers IN SHARE MODE');
  const live = await db.query("SELECT machine || ':' || pid AS worker FROM workers WHERE lease_until > herbdl_now() AND stopped_at IS NULL ORDER BY worker_id");
  if (live.rows.length === 0) return;
  throw new LedgerError(
    `${live.rows.length} worker(s) started on this ledger while the snapshot was being ingested (${live.rows.map((r) => r.worker as string).join(', ')}): nothing was removed; stop them and run the same ingest --snapshot again`,
    'ledger_busy',
  );
}

/** The image ids `listed` lacks, COPYed into the UNLISTED work table (temporary: this connection's, until the removal drops it). */
async function copyUnlisted(db: pg.PoolClient, listed: ListedImages): Promise<void> {
  await db.query(`DROP TABLE IF EXISTS ${UNLISTED}`);
  await db.query(`CREATE TEMP TABLE ${UNLISTED} (image_id bigint PRIMARY KEY)`);
  await copyInt8Column(db, UNLISTED, 'image_id', listed.unmarked());
  await db.query(`ANALYZE ${UNLISTED}`);
}
