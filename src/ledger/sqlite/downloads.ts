/**
 * The downloader's side of the SQLite ledger: claiming gbifIDs with their
 * images, and recording outcomes (outcomes.ts) with every counter `status`
 * reads moved in the same transaction. One run holds the file (run-lock.ts),
 * so a claim is a read: nothing else can take the same gbifID. Calls answer
 * at once; they are promises only because a shared ledger's are.
 */
import type Database from 'better-sqlite3';
import type { ClaimedId, ClaimedImage, DerivationDue, DoneBatch, DoneId, FreshnessSummary, HeldElsewhere, HostRate, PruneDue, RecheckDue, RecheckOutcome, Tier, StoredFile, VerifiedSummary, VerifyDue, DownloadLedger, FailedId, FetchedImage, IdState, PublishIntent, RetryCursor, SetAsideId, StoredCopy } from '../ledger.js';
import { intentOf, intentText } from '../rows.js';
import { STATE, STATE_NAME } from './schema.js';
import { StoredCopies } from './stored-copies.js';
import { prepareDownloads, type DownloadStatements } from './download-statements.js';
import { SqliteDerivatives } from './derivatives.js';
import { SqliteRemovals } from './removals.js';
import { SqliteRechecks } from './rechecks.js';
import { SqliteBreakers } from './breakers.js';
import { SqliteOutcomes } from './outcomes.js';
import { SqliteVerifications } from './verifications.js';
import { writeTransaction } from './write-transaction.js';

export class SqliteDownloads implements DownloadLedger {
  private readonly stmt: DownloadStatements;
  private readonly copies: StoredCopies;
  private readonly derivatives: SqliteDerivatives;
  private readonly removals: SqliteRemovals;
  private readonly rechecks: SqliteRechecks;
  private readonly breakers: SqliteBreakers;
  private readonly outcomes: SqliteOutcomes;
  private readonly verifications: SqliteVerifications;

  constructor(private readonly db: Database.Database) {
    this.copies = new StoredCopies(db);
    this.derivatives = new SqliteDerivatives(db);
    this.removals = new SqliteRemovals(db);
    this.rechecks = new SqliteRechecks(db);
    this.breakers = new SqliteBreakers(db);
    this.verifications = new SqliteVerifications(db);
    this.stmt = prepareDownloads(db);
    this.stmt.letGoAll.run();
    this.outcomes = new SqliteOutcomes(this.stmt, this.derivatives);
  }

  async claimPending(afterGbifId: number, limit: number): Promise<ClaimedId[]> {
    return (this.stmt.pending.all(afterGbifId, limit) as [number, number][]).map(([id, attempts]) => this.withImages(id, attempts));
  }

  async claimRetryable(cursor: RetryCursor, dueBy: number, maxAttempts: number, limit: number): Promise<ClaimedId[]> {
    const rows = this.stmt.retryable.all({ dueBy, maxAttempts, at: cursor.dueAt, id: cursor.gbifId, limit }) as [number, number, number][];
    return rows.map(([id, attempts, dueAt]) => this.withImages(id, attempts, dueAt));
  }

  async deferIds(gbifIds: readonly number[]): Promise<void> {
    if (gbifIds.length === 0) return;
    writeTransaction(this.db, () => {
      for (const id of gbifIds) this.stmt.defer.run(id);
    });
  }

  async claimDeferred(limit: number): Promise<ClaimedId[]> {
    const rows = this.stmt.deferred.all(limit) as [number, number][];
    const last = rows[rows.length - 1];
    if (!last) return [];
    this.stmt.undefer.run(last[0]);
    // A failed one handed back (its host was busy) is still claimed for its retry: with when it was due.
    return rows.map(([, id]) => {
      const [attempts, dueAt] = (this.stmt.idAgain.get(id) as [number, number | null] | undefined) ?? [0, null];
      return this.withImages(id, attempts, dueAt);
    });
  }

  async pendingElsewhere(): Promise<HeldElsewhere> {
    return { pending: false, free: false };
  }

  async fetchesElsewhere(urls: readonly string[]): Promise<Map<string, StoredCopy | 'ours'>> {
    // One run holds the file: no image is ever claimed elsewhere, so every URL asked about is this run's.
    return new Map(urls.map((url) => [url, 'ours']));
  }

  async setAside(asides: readonly SetAsideId[]): Promise<void> {
    // One run holds the file: one not blocked by a host stays pending as it was (no longer taken up, if it was).
    writeTransaction(this.db, () => {
      const counted = new Map<number, number>();
      // A batch's set-asides are mostly behind a few hosts: each looked up once.
      const hostIds = new Map<string, number | undefined>();
      const hostIdOf = (host: string) => {
        if (!hostIds.has(host)) hostIds.set(host, this.stmt.hostId.get(host) as number | undefined);
        return hostIds.get(host);
      };
      for (const { gbifId, blockedBy } of asides) {
        const hostId = blockedBy === undefined ? undefined : hostIdOf(blockedBy);
        if (hostId === undefined) {
          this.stmt.letGo.run(gbifId);
          continue;
        }
        const state = this.stmt.park.get(hostId, gbifId) as number | undefined;
        if (state === STATE.pending) counted.set(hostId, (counted.get(hostId) ?? 0) + 1);
      }
      for (const [hostId, n] of counted) this.stmt.blockedMore.run(n, hostId);
    });
  }

  async claimBlocked(host: string, limit: number): Promise<ClaimedId[]> {
    return writeTransaction(this.db, () => this.takeUp(host, limit));
  }

  async claimProbes(hosts: readonly string[]): Promise<ClaimedId[]> {
    return writeTransaction(this.db, () => hosts.flatMap((host) => this.takeUp(host, 1)));
  }

  /** Up to `limit` gbifIDs parked behind `host`, taken up: marked TAKEN_UP, the host's count of parked pending ones moved. */
  private takeUp(host: string, limit: number): ClaimedId[] {
    const hostId = this.stmt.hostId.get(host) as number | undefined;
    if (hostId === undefined) return [];
    const parked = this.stmt.parked.all(hostId, limit) as [number, number, number, number | null][];
    for (const [id] of parked) this.stmt.holdTakenUp.run(id);
    const pending = parked.filter(([, , state]) => state === STATE.pending).length;
    if (pending > 0) this.stmt.blockedLess.run({ n: pending, hostId });
    // A failed one (its retry was set aside) is claimed for its retry again: with when it was due, as claimRetryable gives it.
    return parked.map(([id, attempts, , dueAt]) => ({ ...this.withImages(id, attempts, dueAt), blockedBy: host }));
  }

  async blockedHosts(): Promise<Map<string, number | null>> {
    // A skip over ids_blocked, one probe per host: never a read of the parked rows themselves.
    const hosts = new Map<string, number | null>();
    for (let at = this.stmt.nextBlockedHost.get(0) as number | undefined; at !== undefined; at = this.stmt.nextBlockedHost.get(at) as number | undefined) {
      const [host, openUntil] = this.stmt.hostBreaker.get(at) as [string, number | null];
      hosts.set(host, openUntil);
    }
    return hosts;
  }

  async liveWorkers(): Promise<[]> {
    return [];
  }

  async beginPublish(intents: readonly PublishIntent[]): Promise<void> {
    writeTransaction(this.db, () => {
      for (const intent of intents) this.stmt.intent.run(intent.gbifId, intentText(intent));
    });
  }

  async recordDone(done: readonly DoneId[]): Promise<number[]> {
    const now = Date.now();
    return writeTransaction(this.db, () => this.outcomes.done(done, now));
  }

  async recordDerived(derived: readonly { gbifId: number; widths: readonly number[] }[]): Promise<void> {
    writeTransaction(this.db, () => {
      for (const { gbifId, widths } of derived) {
        this.derivatives.record(gbifId, widths);
        this.stmt.clearIntent.run(gbifId);
      }
    });
  }

  async derivationsDue(widths: readonly number[], afterGbifId: number, limit: number, only?: readonly number[]): Promise<DoneBatch<DerivationDue>> {
    const due = (after: number, n: number) => this.derivatives.due(widths, after, n, (id) => this.stmt.storedFiles.all({ id }) as number[]);
    return only ? eachOf(only, due) : { ...due(afterGbifId, limit), passedOver: [] };
  }

  async derivedWidths(): Promise<number[]> {
    return this.derivatives.known();
  }

  async prunable(afterGbifId: number, limit: number): Promise<{ last: number | undefined; due: PruneDue[] }> {
    return this.removals.prunable(afterGbifId, limit, (id) => this.stmt.storedFiles.all({ id }) as number[]);
  }

  async claimRecheck(tiers: readonly Tier[] | 'all', now: number, afterGbifId: number, limit: number): Promise<{ last: number | undefined; due: RecheckDue[] }> {
    return this.rechecks.claim(tiers, now, afterGbifId, limit);
  }

  async recordRechecked(outcomes: readonly RecheckOutcome[]): Promise<void> {
    const now = Date.now();
    writeTransaction(this.db, () => {
      this.rechecks.record(outcomes, now);
      for (const o of outcomes) this.stmt.clearIntent.run(o.gbifId);
    });
  }

  async recordHostRates(rates: readonly HostRate[]): Promise<void> {
    this.rechecks.hostRates(rates);
  }

  async recordFreshness(summary: FreshnessSummary): Promise<void> {
    this.rechecks.keepFreshness(summary);
  }

  async claimVerify(afterGbifId: number, limit: number, only?: readonly number[]): Promise<DoneBatch<VerifyDue>> {
    const claim = (after: number, n: number) => this.verifications.claim(after, n);
    return only ? eachOf(only, claim) : { ...claim(afterGbifId, limit), passedOver: [] };
  }

  async recordVerified(_checked: readonly number[], reopen: readonly number[], lost: readonly StoredFile[]): Promise<number> {
    return this.verifications.reopen(reopen, lost);
  }

  async recordVerifySummary(summary: VerifiedSummary): Promise<void> {
    this.verifications.keepSummary(summary);
  }

  async prunableGone(afterGbifId: number, limit: number, only?: readonly number[]): Promise<DoneBatch<PruneDue>> {
    const gone = (after: number, n: number) => this.removals.prunableGone(after, n);
    return only ? eachOf(only, gone) : { ...gone(afterGbifId, limit), passedOver: [] };
  }

  async recordPruned(pruned: readonly PruneDue[]): Promise<void> {
    writeTransaction(this.db, () => {
      this.removals.removeGone(pruned.flatMap((p) => p.gone ?? []));
      for (const p of pruned) {
        if (!p.gone) {
          this.removals.forget(p.gbifId);
          this.derivatives.reset(p.gbifId, []);
        }
        this.stmt.clearIntent.run(p.gbifId);
      }
    });
  }

  async openIntents(): Promise<PublishIntent[]> {
    return (this.stmt.intents.all() as [number, string][]).map(([gbifId, text]) => intentOf(gbifId, text));
  }

  async clearIntents(gbifIds: readonly number[]): Promise<void> {
    writeTransaction(this.db, () => {
      for (const id of gbifIds) this.stmt.clearIntent.run(id);
    });
  }

  async recordFailed(failed: readonly FailedId[]): Promise<void> {
    const now = Date.now();
    writeTransaction(this.db, () => this.outcomes.failed(failed, now));
  }

  async openBreakers(): Promise<Map<string, number>> {
    return this.breakers.open();
  }

  async recordBreaker(host: string, openUntil: number | null): Promise<void> {
    this.breakers.record(host, openUntil);
  }

  async closeBreakers(host?: string): Promise<string[]> {
    return this.breakers.close(host);
  }

  async requeueFailed(filter: { host?: string; code?: string }): Promise<number> {
    const hostId = filter.host ? ((this.stmt.hostId.get(filter.host) as number | undefined) ?? -1) : null;
    const result = this.db
      .prepare(
        `UPDATE ids SET next_attempt_at = 0, attempts = 0 WHERE state = ${STATE.failed} AND gbif_id IN (
           SELECT gbif_id FROM images WHERE state = ${STATE.failed}
             AND (:code IS NULL OR error_code = :code) AND (:hostId IS NULL OR host_id = :hostId))`,
      )
      .run({ code: filter.code || null, hostId });
    return result.changes;
  }

  async idStates(gbifIds: readonly number[]): Promise<Map<number, IdState>> {
    const found = new Map<number, IdState>();
    for (const id of gbifIds) {
      const state = this.stmt.idState.get(id) as number | undefined;
      if (state !== undefined) found.set(id, STATE_NAME[state] as IdState);
    }
    return found;
  }

  async claimIds(gbifIds: readonly number[]): Promise<ClaimedId[]> {
    // One run holds the file: a claim is a read, but one parked behind a host is no longer (as every claim on a
    // shared ledger unparks): adopt may make it done from disk, and hosts.blocked_ids counts what is parked.
    return writeTransaction(this.db, () => {
      const claimed: ClaimedId[] = [];
      for (const id of [...gbifIds].sort((a, b) => a - b)) {
        const row = this.stmt.claimable.get(id) as { attempts: number; state: number; blockedHost: number | null } | undefined;
        if (!row) continue;
        if (row.blockedHost !== null && row.blockedHost > 0) {
          this.stmt.unpark.run(id);
          if (row.state === STATE.pending) this.stmt.blockedLess.run({ n: 1, hostId: row.blockedHost });
        }
        claimed.push(this.withImages(id, row.attempts));
      }
      return claimed;
    });
  }

  async withStoredCopies(claimed: readonly ClaimedId[]): Promise<ClaimedId[]> {
    return claimed.map((id) => ({
      ...id,
      images: id.images.map((image) => {
        const stored = this.copies.find(image.url, id.gbifId);
        return stored ? { ...image, stored } : image;
      }),
    }));
  }

  async recordStored(stored: readonly { gbifId: number; images: readonly FetchedImage[] }[]): Promise<void> {
    const now = Date.now();
    writeTransaction(this.db, () => {
      for (const { gbifId, images } of stored) this.outcomes.images(images, this.outcomes.states(gbifId), now);
    });
  }

  async handBack(): Promise<void> {
    // One run holds the file: nothing was taken from anyone.
  }

  /** A claimed gbifID with its images (their stored copies: withStoredCopies, stored-copies.ts); `dueAt` for a failed one claimed for its retry. */
  private withImages(gbifId: number, attempts: number, dueAt: number | null = null): ClaimedId {
    const all = this.stmt.images.all(gbifId) as [number, number, string, string, number][];
    // A removed image (a newer export lacks it) is not fetched; its NN stays its own, never given to another.
    const rows = all.filter((r) => r[4] !== STATE.removed);
    const images = rows.map(([imageId, imageIndex, url, host]): ClaimedImage => ({ imageId, imageIndex, url, host }));
    const claimed: ClaimedId = dueAt === null ? { gbifId, attempts, images } : { gbifId, attempts, images, dueAt };
    if (!all.some((r) => r[4] === STATE.done || r[4] === STATE.removed)) return claimed;
    return { ...claimed, storedFiles: this.stmt.storedFiles.all({ id: gbifId }) as number[] };
  }
}

/**
 * A claim of `only` these gbifIDs, each looked at alone. Never asked of a
 * SQLite ledger, whose one holder passes nothing over, but kept true to the
 * interface.
 */
function eachOf<T extends { gbifId: number }>(only: readonly number[], claim: (after: number, limit: number) => { last: number | undefined; due: T[] }): DoneBatch<T> {
  const due = [...only].sort((a, b) => a - b).flatMap((id) => claim(id - 1, 1).due.filter((d) => d.gbifId === id));
  return { last: due[due.length - 1]?.gbifId, due, passedOver: [] };
}
