/**
 * The claim a pass over a shared ledger's done gbifIDs makes (derive,
 * verify; prune over those with images gone at the source): those no live
 * worker holds, under this worker's lease, in key
 * order; and, in the same statement, the done ones it passed over, held by
 * another worker (a recheck replacing a file, a derive, a worker killed
 * before its lease ended) or locked by another transaction at that moment.
 * The pass comes back for those (../done-pass.ts): passed over in silence, a
 * verify killed beside a derive called a tree whole that was not.
 */
import type pg from 'pg';
import { STATE } from '../rows.js';
import { FREE } from './live.js';

/**
 * What a pass looks at, and what of it it may claim: done gbifIDs (derive,
 * verify); or the gbifIDs with images a recheck found gone at the source,
 * whatever their state (prune removes those files, and holds the gbifID so
 * that no recheck, derive or run publishes it meanwhile), through the index
 * of gone images.
 */
const LOOK = {
  done: { look: (scope: string) => `SELECT gbif_id FROM ids WHERE state = ${STATE.done} AND ${scope}`, claimable: `state = ${STATE.done}` },
  gone: { look: (scope: string) => `SELECT DISTINCT gbif_id FROM images WHERE gone_at IS NOT NULL AND state = ${STATE.done} AND ${scope}`, claimable: 'true' },
};

export interface ClaimedDone {
  readonly gbifId: number;
  /** The derivative widths it has, ascending. */
  readonly widths: number[];
}

/**
 * The gbifIDs LOOK[what] names above `after` (or of `only`), the first
 * `limit` of them in key order, read once through an index (`look`): those
 * no live worker holds (and, for `done`, still done) are claimed by `me`,
 * the others are passed over, and `last` is the last looked at (undefined
 * when none were left). The stretch is what was looked at, so no gbifID is
 * named by two claims, and its end is the read's own limit: a bound taken
 * from what the claim took is one the planner cannot see when it plans, and
 * written as an OR it read the whole of `ids` for each batch (200,000 rows
 * for a batch of 256, measured).
 */
export async function claimDone(pool: pg.Pool, me: number, after: number, limit: number, only?: readonly number[], what: keyof typeof LOOK = 'done'): Promise<{ claimed: ClaimedDone[]; passedOver: number[]; last: number | undefined }> {
  const scope = only ? 'gbif_id = ANY($2::bigint[])' : 'gbif_id > $2';
  const rows = await pool.query(
    `WITH look AS (${LOOK[what].look(scope)} ORDER BY gbif_id LIMIT $3),
     c AS (
       UPDATE ids SET worker_id = $1
       FROM (SELECT gbif_id FROM ids WHERE gbif_id IN (SELECT gbif_id FROM look) AND ${LOOK[what].claimable} AND ${FREE} FOR UPDATE SKIP LOCKED) f
       WHERE ids.gbif_id = f.gbif_id
       RETURNING ids.gbif_id, array(SELECT d.width FROM derivatives d WHERE d.gbif_id = ids.gbif_id ORDER BY d.width) AS widths)
     SELECT gbif_id, widths FROM c
     UNION ALL
     SELECT gbif_id, NULL FROM look WHERE gbif_id NOT IN (SELECT gbif_id FROM c)`,
    [me, only ?? after, limit],
  );
  const claimed: ClaimedDone[] = [];
  const passedOver: number[] = [];
  let last: number | undefined;
  for (const r of rows.rows) {
    const gbifId = Number(r.gbif_id);
    if (last === undefined || gbifId > last) last = gbifId;
    if (r.widths === null) passedOver.push(gbifId);
    else claimed.push({ gbifId, widths: r.widths as number[] });
  }
  claimed.sort((a, b) => a.gbifId - b.gbifId);
  return { claimed, passedOver, last };
}
