/**
 * The shared ledger's record of derivatives, as in SQLite (see
 * sqlite/derivatives.ts): which widths each gbifID has every file at, and a
 * counter per width in totals. Counters are written after the state totals
 * a batch moves, in width order, so two workers' batches never deadlock.
 */
import type pg from 'pg';
import type { DerivationDue, DoneBatch, DoneId } from '../ledger.js';
import { derivedTotalName } from '../rows.js';
import { storedFileIndexes } from './claims.js';
import { claimDone } from './done-claims.js';
import { HELD_BY, LET_GO } from './live.js';

/** Moves the per-width counters: one up for each width of rows `added`, one down for each of rows `dropped`. */
async function count(db: pg.PoolClient, added: readonly number[], dropped: readonly number[] = []): Promise<void> {
  const delta = new Map<number, number>();
  for (const w of added) delta.set(w, (delta.get(w) ?? 0) + 1);
  for (const w of dropped) delta.set(w, (delta.get(w) ?? 0) - 1);
  for (const [w, n] of [...delta].sort((a, b) => a[0] - b[0])) {
    if (n === 0) continue;
    await db.query('INSERT INTO totals (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = totals.value + excluded.value', [derivedTotalName(w), n]);
  }
}

/** Inserts (gbifID, width) rows, only for gbifIDs that are done; returns the widths of the rows added. */
async function add(db: pg.PoolClient, rows: readonly { gbifId: number; widths?: readonly number[] }[]): Promise<number[]> {
  const pairs = rows.flatMap((r) => (r.widths ?? []).map((w) => [r.gbifId, w] as const));
  if (pairs.length === 0) return [];
  const added = await db.query(
    `INSERT INTO derivatives (gbif_id, width)
       SELECT v.gbif_id, v.width FROM unnest($1::bigint[], $2::int[]) AS v(gbif_id, width) JOIN ids USING (gbif_id) WHERE ids.state = 1
     ON CONFLICT DO NOTHING RETURNING width`,
    [pairs.map((p) => p[0]), pairs.map((p) => p[1])],
  );
  return added.rows.map((r) => r.width as number);
}

/** gbifIDs published again (already marked done in this transaction): their derivatives are now exactly their `widths`. */
export async function resetDerivatives(db: pg.PoolClient, done: readonly DoneId[]): Promise<void> {
  const dropped = await db.query('DELETE FROM derivatives WHERE gbif_id = ANY($1::bigint[]) RETURNING width', [done.map((d) => d.gbifId)]);
  await count(db, await add(db, done), dropped.rows.map((r) => r.width as number));
}

/** Derivatives `herbdl derive` published for done gbifIDs; its intents for them end. */
export async function recordDerived(db: pg.PoolClient, me: number, derived: readonly { gbifId: number; widths: readonly number[] }[]): Promise<void> {
  await count(db, await add(db, derived));
  await db.query('DELETE FROM publishing WHERE gbif_id = ANY($1::bigint[]) AND worker_id = $2', [derived.map((d) => d.gbifId), me]);
  await db.query(`UPDATE ids SET ${LET_GO} WHERE gbif_id = ANY($1::bigint[]) AND ${HELD_BY('worker_id', '$2')}`, [derived.map((d) => d.gbifId), me]);
}

/**
 * Done gbifIDs after `after` (or of `only`) that lack some of `widths`,
 * claimed by worker `me` (as a run claims, under its lease) until
 * recordDerived or handBack: while derive reads a gbifID's files, no worker
 * republishes it (a newer export may have reopened it), so the widths it
 * records describe the set it read. gbifIDs that lack nothing are let go at
 * once; ones another worker holds are passed over, for the pass to come back
 * for (done-claims.ts).
 */
export async function derivationsDue(pool: pg.Pool, me: number, widths: readonly number[], after: number, limit: number, only?: readonly number[]): Promise<DoneBatch<DerivationDue>> {
  const { claimed, passedOver, last } = await claimDone(pool, me, after, limit, only);
  const lacking = claimed.map((r) => ({ gbifId: r.gbifId, missing: widths.filter((w) => !r.widths.includes(w)) })).filter((r) => r.missing.length > 0);
  const idle = claimed.filter((r) => !lacking.some((l) => l.gbifId === r.gbifId)).map((r) => r.gbifId);
  if (idle.length > 0) await pool.query(`UPDATE ids SET ${LET_GO} WHERE gbif_id = ANY($1::bigint[]) AND ${HELD_BY('worker_id', '$2')}`, [idle, me]);
  const files = await storedFileIndexes(pool, lacking.map((r) => r.gbifId));
  return { last, due: lacking.map((r) => ({ ...r, files: (files.get(r.gbifId) ?? []).sort((a, b) => a - b) })), passedOver };
}

export async function derivedWidths(pool: pg.Pool): Promise<number[]> {
  const rows = await pool.query("SELECT substr(name, 10)::int AS width FROM totals WHERE name LIKE 'derived_w%'");
  return rows.rows.map((r) => r.width as number);
}
