/** Removed gbifIDs on a shared ledger (see ../snapshots.ts and sqlite/removals.ts): which may still have files, and forgetting them once pruned. */
import type pg from 'pg';
import type { PruneDue } from '../ledger.js';
import { STATE } from '../rows.js';
import { storedFileIndexes } from './claims.js';
import { resetDerivatives } from './derivatives.js';

export async function prunable(pool: pg.Pool, after: number, limit: number): Promise<{ last: number | undefined; due: PruneDue[] }> {
  const rows = await pool.query(
    `SELECT i.gbif_id, array(SELECT d.width FROM derivatives d WHERE d.gbif_id = i.gbif_id ORDER BY d.width) AS widths
     FROM ids i WHERE i.state = ${STATE.removed} AND i.gbif_id > $1 ORDER BY i.gbif_id LIMIT $2`,
    [after, limit],
  );
  const files = await storedFileIndexes(pool, rows.rows.map((r) => r.gbif_id as number));
  const due = rows.rows
    .map((r) => ({ gbifId: r.gbif_id as number, files: (files.get(r.gbif_id as number) ?? []).sort((a, b) => a - b), widths: r.widths as number[] }))
    .filter((d) => d.files.length > 0);
  return { last: rows.rows[rows.rows.length - 1]?.gbif_id as number | undefined, due };
}

/** In the caller's transaction: the files of these removed gbifIDs are gone; their images name none, their derivatives and this worker's intents end. */
export async function recordPruned(db: pg.PoolClient, me: number, gbifIds: readonly number[]): Promise<void> {
  const removed = `(SELECT image_id FROM images WHERE gbif_id = ANY($1::bigint[]) AND state = ${STATE.removed})`;
  await db.query(`DELETE FROM image_parts WHERE image_id IN ${removed}`, [gbifIds]);
  await db.query(`UPDATE images SET sha256 = NULL, file_index = NULL WHERE gbif_id = ANY($1::bigint[]) AND state = ${STATE.removed}`, [gbifIds]);
  await resetDerivatives(db, gbifIds.map((gbifId) => ({ gbifId, images: [] })));
  await db.query('DELETE FROM publishing WHERE gbif_id = ANY($1::bigint[]) AND worker_id = $2', [gbifIds, me]);
}
