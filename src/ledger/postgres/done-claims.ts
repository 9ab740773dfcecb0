/**
 * The claim a pass over a shared ledger's done gbifIDs makes (derive,
 * verify): those no live worker holds, under this worker's lease, in key
 * order; and, in the same statement, the done ones it passed over, held by
 * another worker (a recheck replacing a file, a derive, a worker killed
 * before its lease ended) or locked by another transaction at that moment.
 * The pass comes back for those (../done-pass.ts): passed over in silence, a
 * verify killed beside a derive called a tree whole that was not.
 */
import type pg from 'pg';
import { STATE } from '../rows.js';
import { FREE } from './live.js';

/** Above every gbifID: the stretch's end when the claim took fewer than its limit. One bound, so the key's index serves it. */
const BEYOND = '9223372036854775807';

export interface ClaimedDone {
  readonly gbifId: number;
  /** The derivative widths it has, ascending. */
  readonly widths: number[];
}

/**
 * Done gbifIDs above `after` (up to `limit`), or of `only`, claimed by `me`.
 * The passed-over ones are read from the statement's snapshot, in which the
 * claimed rows are not claimed yet: hence NOT IN, not a test of worker_id.
 * They lie in the stretch the claim looked at: up to its last gbifID when it
 * took `limit`, else everything above `after` (the claim took every free one
 * there), so a held gbifID beyond the last claimed one is named by this claim
 * and by the next (the pass keeps a set).
 */
export async function claimDone(pool: pg.Pool, me: number, after: number, limit: number, only?: readonly number[]): Promise<{ claimed: ClaimedDone[]; passedOver: number[] }> {
  const scope = only ? 'gbif_id = ANY($2::bigint[])' : 'gbif_id > $2';
  const rows = await pool.query(
    `WITH c AS (
       UPDATE ids SET worker_id = $1
       FROM (SELECT gbif_id FROM ids WHERE state = ${STATE.done} AND ${scope} AND ${FREE} ORDER BY gbif_id LIMIT $3 FOR UPDATE SKIP LOCKED) f
       WHERE ids.gbif_id = f.gbif_id
       RETURNING ids.gbif_id, array(SELECT d.width FROM derivatives d WHERE d.gbif_id = ids.gbif_id ORDER BY d.width) AS widths)
     SELECT gbif_id, widths FROM c
     UNION ALL
     SELECT gbif_id, NULL FROM ids
     WHERE state = ${STATE.done} AND ${scope} AND gbif_id NOT IN (SELECT gbif_id FROM c)
       AND gbif_id < (SELECT CASE WHEN count(*) < $3 THEN ${BEYOND} ELSE max(gbif_id) END FROM c)`,
    [me, only ?? after, limit],
  );
  const claimed: ClaimedDone[] = [];
  const passedOver: number[] = [];
  for (const r of rows.rows) {
    if (r.widths === null) passedOver.push(Number(r.gbif_id));
    else claimed.push({ gbifId: Number(r.gbif_id), widths: r.widths as number[] });
  }
  claimed.sort((a, b) => a.gbifId - b.gbifId);
  return { claimed, passedOver };
}
