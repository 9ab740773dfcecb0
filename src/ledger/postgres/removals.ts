/** Removed gbifIDs on a shared ledger (see ../snapshots.ts and sqlite/removals.ts): which may still have files, and forgetting them once pruned. */
import type pg from 'pg';
import type { DoneBatch, PruneDue } from '../ledger.js';
import { STATE } from '../rows.js';
import { storedFileIndexes } from './claims.js';
import { resetDerivatives } from './derivatives.js';
import { claimDone } from './done-claims.js';
import { HELD_BY, LET_GO } from './live.js';
import { DROP_WORK_TABLES, imagesSelect, removeStatements } from '../snapshots.js';

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

/**
 * gbifIDs with images gone at the source (recheck), each with those images and
 * their files' NNs, claimed by `me` until recordPruned (or a hand-back): prune
 * removes those files, and no recheck, derive or run may publish the gbifID
 * meanwhile. Ones another worker holds are passed over, for the pass to come
 * back for (done-claims.ts).
 */
export async function prunableGone(pool: pg.Pool, me: number, after: number, limit: number, only?: readonly number[]): Promise<DoneBatch<PruneDue>> {
  const { claimed, passedOver, last } = await claimDone(pool, me, after, limit, only, 'gone');
  const list = claimed.map((c) => c.gbifId);
  if (list.length === 0) return { last, due: [], passedOver };
  const rows = await pool.query(
    `SELECT i.gbif_id, i.image_id, COALESCE(i.file_index, i.image_index) AS nn FROM images i
     WHERE i.gbif_id = ANY($1::bigint[]) AND i.gone_at IS NOT NULL AND i.state = ${STATE.done} ORDER BY i.gbif_id, nn`,
    [list],
  );
  const widths = new Map(claimed.map((c) => [c.gbifId, c.widths]));
  const due = new Map<number, { gbifId: number; files: number[]; widths: number[]; gone: number[] }>();
  for (const r of rows.rows) {
    const d = due.get(r.gbif_id) ?? { gbifId: r.gbif_id as number, files: [], widths: widths.get(r.gbif_id) ?? [], gone: [] };
    d.files.push(r.nn as number);
    d.gone.push(r.image_id as number);
    due.set(r.gbif_id, d);
  }
  // Its gone images were pruned meanwhile by another prune: nothing to do, let go at once.
  const idle = list.filter((id) => !due.has(id));
  if (idle.length > 0) await pool.query(`UPDATE ids SET ${LET_GO} WHERE gbif_id = ANY($1::bigint[]) AND ${HELD_BY('worker_id', '$2')}`, [idle, me]);
  return { last, due: [...due.values()], passedOver };
}

/** In the caller's transaction: images gone at the source, their files pruned, are removed (a gbifID left with none too). */
async function removeGone(db: pg.PoolClient, imageIds: readonly number[]): Promise<void> {
  if (imageIds.length === 0) return;
  for (const sql of removeStatements(imagesSelect(imageIds), false)) await db.query(sql);
  for (const sql of DROP_WORK_TABLES) await db.query(sql);
  await db.query("UPDATE totals SET value = value - $1 WHERE name = 'images_gone'", [imageIds.length]);
  await db.query('UPDATE images SET sha256 = NULL, file_index = NULL WHERE image_id = ANY($1::bigint[])', [imageIds]);
}

/** In the caller's transaction: the files of these removed gbifIDs (or gone images) are no longer in the tree; this worker's intents for them end. */
export async function recordPruned(db: pg.PoolClient, me: number, pruned: readonly PruneDue[]): Promise<void> {
  await removeGone(db, pruned.flatMap((p) => p.gone ?? []));
  await db.query('DELETE FROM publishing WHERE gbif_id = ANY($1::bigint[]) AND worker_id = $2', [pruned.map((p) => p.gbifId), me]);
  const gone = pruned.filter((p) => p.gone).map((p) => p.gbifId);
  if (gone.length > 0) await db.query(`UPDATE ids SET ${LET_GO} WHERE gbif_id = ANY($1::bigint[]) AND ${HELD_BY('worker_id', '$2')}`, [gone, me]);
  const gbifIds = pruned.filter((p) => !p.gone).map((p) => p.gbifId);
  if (gbifIds.length === 0) return;
  const removed = `(SELECT image_id FROM images WHERE gbif_id = ANY($1::bigint[]) AND state = ${STATE.removed})`;
  await db.query(`DELETE FROM image_parts WHERE image_id IN ${removed}`, [gbifIds]);
  await db.query(`UPDATE images SET sha256 = NULL, file_index = NULL WHERE gbif_id = ANY($1::bigint[]) AND state = ${STATE.removed}`, [gbifIds]);
  await resetDerivatives(db, gbifIds.map((gbifId) => ({ gbifId, images: [] })));
}
