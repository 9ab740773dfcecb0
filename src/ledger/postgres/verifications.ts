/**
 * Verifying a shared ledger's done gbifIDs against the tree (herbdl verify;
 * see sqlite/verifications.ts). They are claimed as a recheck claims them
 * (worker_id, the worker's lease): a gbifID another worker holds (a recheck
 * replacing its file, a derive) is passed over, never judged by a file that
 * worker is changing, and taken when let go (done-claims.ts).
 */
import type pg from 'pg';
import { LAST_VERIFY, type DoneBatch, type StoredFile, type VerifiedSummary, type VerifyDue } from '../ledger.js';
import { doneFilesSql, groupDoneFiles, STATE, type DoneFileRow } from '../rows.js';
import { claimDone } from './done-claims.js';
import { HELD_BY, LET_GO } from './live.js';

export async function claimVerify(pool: pg.Pool, me: number, after: number, limit: number, only?: readonly number[]): Promise<DoneBatch<VerifyDue>> {
  const { claimed, passedOver, last } = await claimDone(pool, me, after, limit, only);
  if (claimed.length === 0) return { last, due: [], passedOver };
  const files = await pool.query({ text: doneFilesSql('i.gbif_id = ANY($1::bigint[])'), values: [claimed.map((i) => i.gbifId)], rowMode: 'array' });
  return { last, due: groupDoneFiles(claimed, files.rows as unknown as DoneFileRow[]), passedOver };
}

/**
 * In the caller's transaction. Sent again after a commit whose answer was
 * lost (connect.ts: riding), it reopens and counts nothing twice: the
 * gbifIDs it reopened are pending, and no longer this worker's.
 */
export async function recordVerified(db: pg.PoolClient, me: number, checked: readonly number[], reopen: readonly number[], lost: readonly StoredFile[]): Promise<number> {
  // A stored copy is one whose sha256 the ledger has (claims.ts): a lost file's is forgotten.
  const images = lost.filter((f) => f.partIndex === null).map((f) => f.imageId);
  const parts = lost.filter((f) => f.partIndex !== null);
  if (images.length > 0) await db.query('UPDATE images SET sha256 = NULL WHERE image_id = ANY($1::bigint[])', [images]);
  if (parts.length > 0) {
    await db.query('UPDATE image_parts p SET sha256 = NULL FROM unnest($1::bigint[], $2::int[]) AS v(image_id, part_index) WHERE p.image_id = v.image_id AND p.part_index = v.part_index', [
      parts.map((f) => f.imageId),
      parts.map((f) => f.partIndex),
    ]);
  }
  const reopened =
    reopen.length === 0
      ? 0
      : ((await db.query(`UPDATE ids SET state = ${STATE.pending}, blocked_host = NULL, ${LET_GO} WHERE gbif_id = ANY($1::bigint[]) AND state = ${STATE.done} AND ${HELD_BY('worker_id', '$2')}`, [reopen, me])).rowCount ?? 0);
  if (reopened > 0) {
    await db.query("UPDATE totals SET value = value + $1 WHERE name = 'ids_pending'", [reopened]);
    await db.query("UPDATE totals SET value = value - $1 WHERE name = 'ids_done'", [reopened]);
  }
  await db.query(`UPDATE ids SET ${LET_GO} WHERE gbif_id = ANY($1::bigint[]) AND ${HELD_BY('worker_id', '$2')}`, [checked, me]);
  return reopened;
}

export async function recordVerifySummary(pool: pg.Pool, summary: VerifiedSummary): Promise<void> {
  await pool.query('INSERT INTO herbdl_meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = excluded.value', [LAST_VERIFY, JSON.stringify(summary)]);
}
