/**
 * The downloader's side of a shared ledger: claims (claims.ts), outcomes
 * (outcomes.ts) and breakers, for the worker that holds `lease`. Every call
 * moves a batch; none is made per request.
 */
import type pg from 'pg';
import type { ClaimedId, DerivationDue, DoneId, FreshnessSummary, HeldElsewhere, HostRate, PruneDue, RecheckDue, RecheckOutcome, Tier, DownloadLedger, FailedId, FetchedImage, IdState, PublishIntent, RetryCursor, StoredCopy, WorkerId } from '../ledger.js';
import { intentOf, intentText, STATE_NAME } from '../rows.js';
import { claimWith, storedCopies, withStoredCopies } from './claims.js';
import { FREE, GONE_HOLDERS, HELD_BY, LET_GO, LIVE, SET_ASIDE } from './live.js';
import { fetchesElsewhere } from './url-fetches.js';
import { transaction } from './connect.js';
import { PostgresHostBudgets } from './host-budgets.js';
import { recordDone, recordFailed, recordStored } from './outcomes.js';
import { derivationsDue, derivedWidths, recordDerived } from './derivatives.js';
import { prunable, prunableGone, recordPruned } from './removals.js';
import { claimRecheck, recordFreshness, recordHostRates, recordRechecked } from './rechecks.js';
import type { WorkerLease } from './worker-lease.js';


export class PostgresDownloads implements DownloadLedger {
  private readonly me: number;
  readonly hostBudgets: PostgresHostBudgets;

  constructor(
    private readonly pool: pg.Pool,
    private readonly lease: WorkerLease,
  ) {
    this.me = lease.workerId;
    this.hostBudgets = new PostgresHostBudgets(pool, this.me);
  }

  claimPending(afterGbifId: number, limit: number): Promise<ClaimedId[]> {
    // Set-aside ones are out of ids_claimable: claimAbandoned takes those whose worker is gone.
    return claimWith(this.pool, this.me, `SELECT gbif_id FROM ids WHERE state = 0 AND NOT set_aside AND gbif_id > $2 AND ${FREE} ORDER BY gbif_id LIMIT $3`, [afterGbifId, limit]);
  }

  claimAbandoned(limit: number): Promise<ClaimedId[]> {
    // One gone worker's at a time, found by its id in ids_set_aside: rows a live worker set aside are never read.
    // In that index's order, so that the planner walks it whatever the statistics say (without an order, it took
    // the worker to hold every row and scanned the table: 0.3 s at 1.6M when no worker was gone, each pass).
    // They were due when that worker claimed them; a failed one comes with when it was due, as claimRetryable gives it.
    return claimWith(
      this.pool,
      this.me,
      `SELECT gbif_id FROM ids WHERE ${SET_ASIDE} AND worker_id = (${GONE_HOLDERS} LIMIT 1) ORDER BY gbif_id LIMIT $2`,
      [limit],
      true,
    );
  }

  claimRetryable(cursor: RetryCursor, dueBy: number, maxAttempts: number, limit: number): Promise<ClaimedId[]> {
    return claimWith(
      this.pool,
      this.me,
      `SELECT gbif_id FROM ids WHERE state = 2 AND NOT set_aside AND next_attempt_at <= $2 AND attempts < $3
         AND (next_attempt_at > $4 OR (next_attempt_at = $4 AND gbif_id > $5)) AND ${FREE}
       ORDER BY next_attempt_at, gbif_id LIMIT $6`,
      [dueBy, maxAttempts, cursor.dueAt, cursor.gbifId, limit],
      true,
    );
  }

  /** Hands the IDs back at once: another worker may have room at their hosts (and this one meets them again on its next pass). */
  async deferIds(gbifIds: readonly number[]): Promise<void> {
    if (gbifIds.length === 0) return;
    await this.pool.query(`UPDATE ids SET ${LET_GO} WHERE gbif_id = ANY($1::bigint[]) AND ${HELD_BY('worker_id', '$2')}`, [gbifIds, this.me]);
  }

  async idStates(gbifIds: readonly number[]): Promise<Map<number, IdState>> {
    const rows = await this.pool.query('SELECT gbif_id, state FROM ids WHERE gbif_id = ANY($1::bigint[])', [gbifIds]);
    return new Map(rows.rows.map((r) => [r.gbif_id as number, STATE_NAME[r.state as number] as IdState]));
  }

  withStoredCopies(claimed: readonly ClaimedId[]): Promise<ClaimedId[]> {
    return withStoredCopies(this.pool, claimed);
  }

  claimIds(gbifIds: readonly number[]): Promise<ClaimedId[]> {
    return claimWith(this.pool, this.me, `SELECT gbif_id FROM ids WHERE gbif_id = ANY($2::bigint[]) AND state IN (0, 2) AND ${FREE} ORDER BY gbif_id`, [gbifIds], false, false);
  }

  async recordStored(stored: readonly { gbifId: number; images: readonly FetchedImage[] }[]): Promise<void> {
    if (stored.length === 0) return;
    await transaction(this.pool, (db) => recordStored(db, this.me, stored));
  }

  handBack(gbifIds: readonly number[]): Promise<void> {
    return this.deferIds(gbifIds);
  }

  async claimDeferred(): Promise<ClaimedId[]> {
    return [];
  }

  async pendingElsewhere(dueBy: number, maxAttempts: number): Promise<HeldElsewhere> {
    // Whether any remain is what matters: one row of each kind, so it stays cheap with millions pending.
    // Failed ones due are counted as pending are: a full host queue hands them back as it does pending ones.
    // Set-aside ones are left out (the claim's indexes do): a live worker's stay with it until it ends. In the
    // claims' orders, so that the claims' indexes serve them: the statistics say nothing is set aside (a bulk load's
    // ANALYZE saw none), and the planner then took the first row of a whole scan to be a match, and read millions.
    const anyOf = (where: string, more = 'false') =>
      `SELECT ((SELECT 1 FROM ids WHERE state = 0 AND NOT set_aside AND ${where} ORDER BY gbif_id LIMIT 1) IS NOT NULL
         OR (SELECT 1 FROM ids WHERE state = 2 AND NOT set_aside AND next_attempt_at <= $1 AND attempts < $2 AND ${where} ORDER BY next_attempt_at, gbif_id LIMIT 1) IS NOT NULL
         OR ${more}) AS found`;
    // Free ones first, and those set aside by a worker that is gone: only those can be claimed, and a pass is worth its cost.
    const free = (await this.pool.query(anyOf(FREE, `EXISTS (${GONE_HOLDERS})`), [dueBy, maxAttempts])).rows[0].found as boolean;
    if (free) return { pending: true, free: true };
    // Else any another live worker holds and has not set aside (an open breaker).
    const held = (await this.pool.query(anyOf('worker_id IS DISTINCT FROM $3'), [dueBy, maxAttempts, this.me])).rows[0].found as boolean;
    return { pending: held, free: false };
  }

  fetchesElsewhere(urls: readonly string[]): Promise<Map<string, StoredCopy | 'ours'>> {
    return fetchesElsewhere(this.pool, this.me, urls, (u) => storedCopies(this.pool, u));
  }

  async setAside(gbifIds: readonly number[]): Promise<void> {
    if (gbifIds.length === 0) return;
    const set = await this.pool.query(`UPDATE ids SET set_aside = true WHERE gbif_id = ANY($1::bigint[]) AND ${HELD_BY('worker_id', '$2')} AND NOT set_aside`, [gbifIds, this.me]);
    this.lease.setAside += set.rowCount ?? 0;
  }

  async claimSetAside(gbifIds: readonly number[]): Promise<ClaimedId[]> {
    // Those this worker set aside are marked so (setAside) and still held by it; the claim clears the mark.
    // A failed one comes with when it was due (a pending one has none), as claimRetryable gives it.
    const claimed = await claimWith(this.pool, this.me, `SELECT gbif_id FROM ids WHERE gbif_id = ANY($2::bigint[]) AND ${HELD_BY('worker_id', '$1')} AND set_aside ORDER BY gbif_id`, [gbifIds], true);
    this.lease.setAside -= claimed.length;
    return claimed;
  }

  async liveWorkers(): Promise<WorkerId[]> {
    const rows = await this.pool.query('SELECT machine, pid, since FROM workers WHERE lease_until > herbdl_now() AND worker_id <> $1', [this.me]);
    return rows.rows as WorkerId[];
  }

  async beginPublish(intents: readonly PublishIntent[]): Promise<void> {
    await this.pool.query(
      `INSERT INTO publishing (gbif_id, paths, worker_id) SELECT g, p, $3 FROM unnest($1::bigint[], $2::text[]) AS v(g, p)
       ON CONFLICT (gbif_id) DO UPDATE SET paths = excluded.paths, worker_id = excluded.worker_id`,
      [intents.map((i) => i.gbifId), intents.map(intentText), this.me],
    );
  }

  async recordDone(done: readonly DoneId[]): Promise<void> {
    if (done.length === 0) return;
    this.lease.images += await transaction(this.pool, (db) => recordDone(db, this.me, done));
  }
  async recordDerived(derived: readonly { gbifId: number; widths: readonly number[] }[]): Promise<void> {
    if (derived.length === 0) return;
    await transaction(this.pool, (db) => recordDerived(db, this.me, derived));
  }

  derivationsDue(widths: readonly number[], afterGbifId: number, limit: number): Promise<{ last: number | undefined; due: DerivationDue[] }> {
    return derivationsDue(this.pool, this.me, widths, afterGbifId, limit);
  }

  derivedWidths(): Promise<number[]> {
    return derivedWidths(this.pool);
  }

  claimRecheck(tiers: readonly Tier[] | 'all', now: number, afterGbifId: number, limit: number): Promise<{ last: number | undefined; due: RecheckDue[] }> {
    return claimRecheck(this.pool, this.me, tiers, now, afterGbifId, limit);
  }

  async recordRechecked(outcomes: readonly RecheckOutcome[]): Promise<void> {
    if (outcomes.length === 0) return;
    await transaction(this.pool, (db) => recordRechecked(db, this.me, outcomes));
  }

  recordHostRates(rates: readonly HostRate[]): Promise<void> {
    return recordHostRates(this.pool, rates);
  }

  recordFreshness(summary: FreshnessSummary): Promise<void> {
    return recordFreshness(this.pool, summary);
  }

  prunable(afterGbifId: number, limit: number): Promise<{ last: number | undefined; due: PruneDue[] }> {
    return prunable(this.pool, afterGbifId, limit);
  }

  prunableGone(afterGbifId: number, limit: number): Promise<{ last: number | undefined; due: PruneDue[] }> {
    return prunableGone(this.pool, afterGbifId, limit);
  }

  async recordPruned(pruned: readonly PruneDue[]): Promise<void> {
    if (pruned.length === 0) return;
    await transaction(this.pool, (db) => recordPruned(db, this.me, pruned));
  }


  /**
   * Intents of dead workers whose gbifIDs this worker can take: taken (so no
   * live worker is publishing them) and returned to be undone. An intent
   * left on a gbifID that is done meanwhile is only dropped: its files are
   * the done set's.
   *
   * Every worker asks as it starts, so both statements read ids by the
   * intents' gbifIDs, a probe each: written as joins, the planner (told by
   * the statistics that no gbifID is done, or that the intents are many)
   * scanned the whole of ids, twice per worker start, 50M rows on an export.
   */
  async openIntents(): Promise<PublishIntent[]> {
    await this.pool.query(
      // A dead worker's intent on a done gbifID is dropped, never undone (undoing removes files another worker may have
      // published since), unless it replaces a done set (a recheck's, a JSON object with restores): that one is rolled back.
      `DELETE FROM publishing p WHERE p.worker_id <> $1 AND NOT ${LIVE('p.worker_id')} AND p.paths NOT LIKE '{%'
         AND (SELECT ids.state FROM ids WHERE ids.gbif_id = p.gbif_id) = 1`,
      [this.me],
    );
    const taken = await this.pool.query(
      `UPDATE ids SET worker_id = $1 FROM (
         SELECT gbif_id FROM ids WHERE gbif_id = ANY(ARRAY(SELECT p.gbif_id FROM publishing p WHERE p.worker_id = $1 OR NOT ${LIVE('p.worker_id')}))
           AND ${FREE} ORDER BY 1 FOR UPDATE SKIP LOCKED) c
       WHERE ids.gbif_id = c.gbif_id RETURNING ids.gbif_id`,
      [this.me],
    );
    if (taken.rows.length === 0) return [];
    const rows = await this.pool.query('SELECT gbif_id, paths FROM publishing WHERE gbif_id = ANY($1::bigint[])', [taken.rows.map((r) => r.gbif_id)]);
    return rows.rows.map((r) => intentOf(r.gbif_id as number, r.paths as string));
  }

  async clearIntents(gbifIds: readonly number[]): Promise<void> {
    if (gbifIds.length === 0) return;
    await transaction(this.pool, async (db) => {
      await db.query('DELETE FROM publishing WHERE gbif_id = ANY($1::bigint[])', [gbifIds]);
      // Undone, they are pending for whoever claims them next.
      await db.query(`UPDATE ids SET ${LET_GO} WHERE gbif_id = ANY($1::bigint[]) AND ${HELD_BY('worker_id', '$2')}`, [gbifIds, this.me]);
    });
  }

  async recordFailed(failed: readonly FailedId[]): Promise<void> {
    if (failed.length === 0) return;
    await transaction(this.pool, (db) => recordFailed(db, this.me, failed));
  }

  async openBreakers(): Promise<Map<string, number>> {
    const rows = await this.pool.query('SELECT host, breaker_open_until FROM hosts WHERE breaker_open_until IS NOT NULL');
    return new Map(rows.rows.map((r) => [r.host as string, r.breaker_open_until as number]));
  }

  async recordBreaker(host: string, openUntil: number | null): Promise<void> {
    await this.pool.query('UPDATE hosts SET breaker_open_until = $2, blocked_ids = NULL WHERE host = $1', [host, openUntil]);
  }

  async recordBlocked(blocked: ReadonlyMap<string, number>): Promise<void> {
    if (blocked.size === 0) return;
    await this.pool.query(
      `UPDATE hosts h SET blocked_ids = v.n FROM unnest($1::text[], $2::bigint[]) AS v(host, n) WHERE h.host = v.host AND h.breaker_open_until IS NOT NULL`,
      [[...blocked.keys()], [...blocked.values()]],
    );
  }

  async closeBreakers(host?: string): Promise<string[]> {
    const rows = await this.pool.query(
      'UPDATE hosts SET breaker_open_until = NULL, blocked_ids = NULL WHERE breaker_open_until IS NOT NULL AND ($1::text IS NULL OR host = $1) RETURNING host',
      [host ?? null],
    );
    return rows.rows.map((r) => r.host as string).sort();
  }

  async requeueFailed(filter: { host?: string; code?: string }): Promise<number> {
    const result = await this.pool.query(
      `UPDATE ids SET next_attempt_at = 0, attempts = 0 WHERE state = 2 AND gbif_id IN (
         SELECT i.gbif_id FROM images i JOIN hosts h USING (host_id) WHERE i.state = 2
           AND ($1::text IS NULL OR i.error_code = $1) AND ($2::text IS NULL OR h.host = $2))`,
      [filter.code || null, filter.host ?? null],
    );
    return result.rowCount ?? 0;
  }
}
