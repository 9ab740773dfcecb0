/**
 * Where a run's gbifIDs come from, in order: failed ones due for a retry
 * (retry-failed puts its picks here), then pending ones by key, then those
 * set aside earlier in the run because their host was saturated. Keyset
 * cursors mean each ID is claimed once per run; the set-aside IDs are kept
 * by the ledger (deferIds), so memory holds only the cursors and a count.
 */
import type { ClaimedId, DownloadLedger, RetryCursor } from '../ledger/ledger.js';

const SPILL_RETRY_MS = 250;

export class Claims {
  private phase: 'retry' | 'pending' | 'spilled' | 'exhausted' = 'retry';
  private retryCursor: RetryCursor = { dueAt: -1, gbifId: 0 };
  private pendingCursor = 0;
  /** Set aside since the last claim, not yet handed to the ledger; and how many the ledger holds. */
  private spilledNow: number[] = [];
  private spilledInLedger = 0;
  private claimed = 0;
  /** While set-aside IDs' hosts stay saturated, they are looked at again only from this time. */
  spillRetryAt = 0;

  constructor(
    private readonly ledger: DownloadLedger,
    private readonly runStart: number,
    private readonly maxAttempts: number,
    private readonly limit: number,
  ) {}

  get exhausted(): boolean {
    return this.phase === 'exhausted';
  }

  get waitingOnSpilled(): boolean {
    return this.phase === 'spilled' && this.spillRetryAt > Date.now();
  }

  /**
   * Up to `want` more gbifIDs; [] when a phase just ended (ask again) or there
   * is nothing to claim right now; check `exhausted`.
   */
  next(want: number): ClaimedId[] {
    this.flushSpilled();
    if (this.limit > 0) {
      if (this.claimed >= this.limit) this.phase = 'exhausted';
      want = Math.min(want, this.limit - this.claimed);
    }
    switch (this.phase) {
      case 'retry': {
        const batch = this.ledger.claimRetryable(this.retryCursor, this.runStart, this.maxAttempts, want);
        const last = batch[batch.length - 1];
        if (last) this.retryCursor = { dueAt: last.dueAt ?? 0, gbifId: last.gbifId };
        else this.phase = 'pending';
        return batch;
      }
      case 'pending': {
        const batch = this.ledger.claimPending(this.pendingCursor, want);
        const last = batch[batch.length - 1];
        if (last) this.pendingCursor = last.gbifId;
        else this.phase = 'spilled';
        return batch;
      }
      case 'spilled': {
        if (this.spilledInLedger === 0) this.phase = 'exhausted';
        if (this.spilledInLedger === 0 || this.waitingOnSpilled) return [];
        const batch = this.ledger.claimDeferred(want);
        // Nothing came back: the ledger holds none, whatever the count says (never spin on it).
        this.spilledInLedger = batch.length === 0 ? 0 : this.spilledInLedger - batch.length;
        return batch;
      }
      default:
        return [];
    }
  }

  /** Counts an ID taken into the window (for --limit). */
  admitted(): void {
    this.claimed++;
  }

  /** Sets an ID aside until its host's queue has room. */
  spill(gbifId: number): void {
    this.spilledNow.push(gbifId);
  }

  private flushSpilled(): void {
    if (this.spilledNow.length === 0) return;
    this.ledger.deferIds(this.spilledNow);
    this.spilledInLedger += this.spilledNow.length;
    this.spilledNow = [];
  }

  /** Called when a whole batch of set-aside IDs found their hosts still saturated. */
  backOffSpilled(): void {
    if (this.phase === 'spilled') this.spillRetryAt = Date.now() + SPILL_RETRY_MS;
  }
}
