/**
 * The downloader's side of a shared ledger: claims (claims.ts), outcomes
 * (outcomes.ts) and breakers, for the worker that holds `lease`. Every call
 * moves a batch; none is made per request.
 */
import type pg from 'pg';
import type { ClaimedId, DerivationDue, DoneBatch, DoneId, FreshnessSummary, HeldElsewhere, HostRate, PruneDue, RecheckDue, RecheckOutcome, Tier, StoredFile, VerifiedSummary, VerifyDue, DownloadLedger, FailedId, FetchedImage, IdState, PublishIntent, RetryCursor, SetAsideId, StoredCopy, WorkerId } from '../ledger.js';
import { intentOf, intentText, STATE, STATE_NAME } from '../rows.js';
import { claimWith, storedCopies, withStoredCopies } from './claims.js';
import { BLOCKED_HOSTS, FREE, HELD_BY, LET_GO, LIVE } from './live.js';
import { fetchesElsewhere } from './url-fetches.js';
import { transaction } from './connect.js';
import { PostgresHostBudgets } from './host-budgets.js';
import { recordDone, recordFailed, recordStored } from './outcomes.js';
import { derivationsDue, derivedWidths, recordDerived } from './derivatives.js';
import { prunable, prunableGone, recordPruned } from './removals.js';
import { claimRecheck, recordFreshness, recordHostRates, recordRechecked } from './rechecks.js';
import { claimVerify, recordVerified, recordVerifySummary } from './verifications.js';
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
    // Parked ones are out of ids_claimable: claimBlocked takes them up, by host.
    return claimWith(this.pool, this.me, `SELECT gbif_id FROM ids WHERE state = 0 AND blocked_host IS NULL AND gbif_id > $2 AND ${FREE} ORDER BY gbif_id LIMIT $3`, [afterGbifId, limit]);
  }

  claimBlocked(host: string, limit: number): Promise<ClaimedId[]> {
    // In ids_blocked's order, its condition repeated, so that it serves the claim whatever the statistics say.
    // A failed one comes with when it was due, as claimRetryable gives it.
    return claimWith(
      this.pool,
      this.me,
      `SELECT gbif_id, blocked_host AS was_blocked FROM ids WHERE blocked_host = (SELECT host_id FROM hosts WHERE host = $2) AND blocked_host IS NOT NULL AND state IN (0, 2) AND ${FREE}
       ORDER BY blocked_host, gbif_id LIMIT $3`,
      [host, limit],
      true,
      true,
      true,
    );
  }

  claimProbes(hosts: readonly string[]): Promise<ClaimedId[]> {
    // One probe of ids_blocked per host (a lateral subquery), then those rows locked by their key: a lock on the join
    // would lock the hosts' rows too, which every outcome's counters write.
    return claimWith(
      this.pool,
      this.me,
      `SELECT ids.gbif_id, ids.blocked_host AS was_blocked FROM ids WHERE ids.gbif_id = ANY(ARRAY(
         SELECT p.gbif_id FROM hosts h CROSS JOIN LATERAL (
           SELECT gbif_id FROM ids WHERE blocked_host = h.host_id AND blocked_host IS NOT NULL AND state IN (0, 2) AND ${FREE}
           ORDER BY blocked_host, gbif_id LIMIT 1) p
         WHERE h.host = ANY($2::text[])))
       AND ids.blocked_host IS NOT NULL AND ids.state IN (0, 2) AND ${FREE} ORDER BY ids.gbif_id`,
      [hosts],
      true,
      true,
      true,
    );
  }

  async blockedHosts(): Promise<Map<string, number | null>> {
    return new Map((await this.pool.query(BLOCKED_HOSTS)).rows.map((r) => [r.host as string, r.breaker_open_until as number | null]));
  }

  claimRetryable(cursor: RetryCursor, dueBy: number, maxAttempts: number, limit: number): Promise<ClaimedId[]> {
    return claimWith(
      this.pool,
      this.me,
      `SELECT gbif_id FROM ids WHERE state = 2 AND blocked_host IS NULL AND next_attempt_at <= $2 AND attempts < $3
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
    // Adopt's: a gbifID parked behind a dead host may be on disk from an earlier download (its host's count goes down).
    return claimWith(this.pool, this.me, `SELECT gbif_id, blocked_host AS was_blocked FROM ids WHERE gbif_id = ANY($2::bigint[]) AND state IN (0, 2) AND ${FREE} ORDER BY gbif_id`, [gbifIds], false, false, true);
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
    // Parked ones are left out (the claim's indexes do): they wait for their host, not for a worker. In the
    // claims' orders, so that the claims' indexes serve them: the statistics say nothing is parked (a bulk load's
    // ANALYZE saw none), and the planner then took the first row of a whole scan to be a match, and read millions.
    const anyOf = (where: string) =>
      `SELECT ((SELECT 1 FROM ids WHERE state = 0 AND blocked_host IS NULL AND ${where} ORDER BY gbif_id LIMIT 1) IS NOT NULL
         OR (SELECT 1 FROM ids WHERE state = 2 AND blocked_host IS NULL AND next_attempt_at <= $1 AND attempts < $2 AND ${where} ORDER BY next_attempt_at, gbif_id LIMIT 1) IS NOT NULL) AS found`;
    // Free ones first: only those can be claimed, and a pass is worth its cost.
    const free = (await this.pool.query(anyOf(FREE), [dueBy, maxAttempts])).rows[0].found as boolean;
    if (free) return { pending: true, free: true };
    // Else any another live worker holds.
    const held = (await this.pool.query(anyOf('worker_id IS DISTINCT FROM $3'), [dueBy, maxAttempts, this.me])).rows[0].found as boolean;
    return { pending: held, free: false };
  }

  fetchesElsewhere(urls: readonly string[]): Promise<Map<string, StoredCopy | 'ours'>> {
    return fetchesElsewhere(this.pool, this.me, urls, (u) => storedCopies(this.pool, u));
  }

  async setAside(asides: readonly SetAsideId[]): Promise<void> {
    if (asides.length === 0) return;
    // Let go, and those blocked by a host parked behind it, its count of parked pending ones moved in the same statement.
    const parked = await this.pool.query(
      `WITH parked AS (
         UPDATE ids SET ${LET_GO}, blocked_host = h.host_id
         FROM unnest($1::bigint[], $2::text[]) AS v(gbif_id, host) LEFT JOIN hosts h ON h.host = v.host
         WHERE ids.gbif_id = v.gbif_id AND ${HELD_BY('ids.worker_id', '$3')}
         RETURNING ids.blocked_host, ids.state),
       counted AS (
         UPDATE hosts SET blocked_ids = COALESCE(blocked_ids, 0) + c.n
         FROM (SELECT blocked_host, count(*) AS n FROM parked WHERE blocked_host IS NOT NULL AND state = ${STATE.pending} GROUP BY 1) c
         WHERE hosts.host_id = c.blocked_host)
       SELECT count(*)::int AS n FROM parked WHERE blocked_host IS NOT NULL`,
      [asides.map((a) => a.gbifId), asides.map((a) => a.blockedBy ?? null), this.me],
    );
    this.lease.setAside += parked.rows[0].n as number;
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

  async recordDone(done: readonly DoneId[]): Promise<readonly number[]> {
    if (done.length === 0) return [];
    const { images, unfinished } = await transaction(this.pool, (db) => recordDone(db, this.me, done));
    this.lease.images += images;
    return unfinished;
  }
  async recordDerived(derived: readonly { gbifId: number; widths: readonly number[] }[]): Promise<void> {
    if (derived.length === 0) return;
    await transaction(this.pool, (db) => recordDerived(db, this.me, derived));
  }

  derivationsDue(widths: readonly number[], afterGbifId: number, limit: number, only?: readonly number[]): Promise<DoneBatch<DerivationDue>> {
    return derivationsDue(this.pool, this.me, widths, afterGbifId, limit, only);
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

  claimVerify(afterGbifId: number, limit: number, only?: readonly number[]): Promise<DoneBatch<VerifyDue>> {
    return claimVerify(this.pool, this.me, afterGbifId, limit, only);
  }

  async recordVerified(checked: readonly number[], reopen: readonly number[], lost: readonly StoredFile[]): Promise<number> {
    if (checked.length === 0) return 0;
    return transaction(this.pool, (db) => recordVerified(db, this.me, checked, reopen, lost));
  }

  recordVerifySummary(summary: VerifiedSummary): Promise<void> {
    return recordVerifySummary(this.pool, summary);
  }

  prunable(afterGbifId: number, limit: number): Promise<{ last: number | undefined; due: PruneDue[] }> {
    return prunable(this.pool, afterGbifId, limit);
  }

  prunableGone(afterGbifId: number, limit: number, only?: readonly number[]): Promise<DoneBatch<PruneDue>> {
    return prunableGone(this.pool, this.me, afterGbifId, limit, only);
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
    // What is parked behind it stays parked until a run takes it up (claimBlocked), and stays counted.
    await this.pool.query('UPDATE hosts SET breaker_open_until = $2 WHERE host = $1', [host, openUntil]);
  }

  async closeBreakers(host?: string): Promise<string[]> {
    const rows = await this.pool.query(
      'UPDATE hosts SET breaker_open_until = NULL WHERE breaker_open_until IS NOT NULL AND ($1::text IS NULL OR host = $1) RETURNING host',
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
