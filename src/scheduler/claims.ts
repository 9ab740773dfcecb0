/**
 * Where a run's gbifIDs come from, in order: failed ones due for a retry
 * (retry-failed puts its picks here), then pending ones by key, then those
 * set aside earlier in the run because their host was saturated. Ahead of
 * all of them, at any time: those parked behind a host's open breaker (in
 * this run or an earlier one) that the run takes up, to probe the host or
 * once it answers (blocked-asides.ts); the passes never meet them.
 * Keyset cursors mean each ID is claimed once per run; the set-aside IDs
 * are kept by the ledger (deferIds), so memory holds only the cursors and a
 * count.
 *
 * On a shared ledger, other workers may still hold pending gbifIDs when this
 * one has claimed all it could: it waits until none is held elsewhere, and
 * goes over the due and pending IDs again whenever some have come free. That
 * is how a dead worker's claims are taken up once its lease expires, and a
 * stopped worker's at once.
 */
import type { ClaimedId, DownloadLedger, RetryCursor } from '../ledger/ledger.js';

const SPILL_RETRY_MS = 250;
/**
 * How long set-aside IDs wait when their hosts are suspected down: such a
 * host opens or answers within its breaker window, and until it does they
 * would only be set aside again, each pass a claim and a write per batch.
 */
const SUSPECT_RETRY_MS = 5000;
/** How often a run that has claimed all it can asks whether other workers' claims have come free. */
const ELSEWHERE_POLL_MS = 1000;

export class Claims {
  private phase: 'retry' | 'pending' | 'spilled' | 'elsewhere' | 'rescan' | 'exhausted' = 'retry';
  private retryCursor: RetryCursor = { dueAt: -1, gbifId: 0 };
  private pendingCursor = 0;
  /** Set aside since the last claim, not yet handed to the ledger; and how many the ledger holds. */
  private spilledNow: number[] = [];
  private spilledInLedger = 0;
  private claimed = 0;
  /**
   * With --limit, the gbifIDs this run has counted: one taken up again after
   * the run parked it is not counted twice, one an earlier run parked is.
   * At most --limit of them.
   */
  private readonly counted = new Set<number>();
  /** Why IDs were set aside since the last back-off: a saturated host's are looked at again soon, a suspect host's later. */
  private spilledSaturated = false;
  private spilledSuspect = false;
  /** While set-aside IDs' hosts stay saturated, they are looked at again only from this time. */
  spillRetryAt = 0;
  /** Hosts whose parked gbifIDs to claim, all of them (the host has come back), before anything else but probes (blocked-asides.ts). */
  private readonly takeUps: string[] = [];
  /** Hosts to claim one parked gbifID of, to probe them, all in one claim, before anything else; each told which (or that none was left). */
  private readonly probes = new Map<string, (gbifId: number | undefined) => void>();
  /** gbifIDs claimed again by a take-up, until the run has looked at them (wasTakenUp). */
  private readonly takenUp = new Set<number>();

  constructor(
    private readonly ledger: DownloadLedger,
    private readonly runStart: number,
    private readonly maxAttempts: number,
    private readonly limit: number,
  ) {}

  get exhausted(): boolean {
    return this.phase === 'exhausted' && this.takeUps.length === 0 && this.probes.size === 0;
  }

  /** True once the passes over the ledger's gbifIDs are over (take-ups aside). */
  get passesOver(): boolean {
    return this.phase === 'exhausted';
  }

  /** True while there is nothing to claim until `retryAt` (set-aside IDs' hosts are saturated, or other workers hold the rest). */
  get waiting(): boolean {
    return this.takeUps.length === 0 && this.probes.size === 0 && (this.phase === 'spilled' || this.phase === 'rescan') && this.retryAt > Date.now();
  }

  /** Claims every gbifID parked behind `host`, ahead of the rest. */
  takeUp(host: string): void {
    this.takeUps.push(host);
  }

  /** Claims one gbifID parked behind `host`, ahead of the rest, to probe it; `probed` is told which (undefined: none was left). */
  probe(host: string, probed: (gbifId: number | undefined) => void): void {
    this.probes.set(host, probed);
  }

  /**
   * True for a gbifID the last batch claimed again from a take-up: one the
   * run holds now is to be left out, and one taken in is not counted for
   * --limit twice. Asked once of each gbifID of a batch.
   */
  wasTakenUp(gbifId: number): boolean {
    return this.takenUp.delete(gbifId);
  }

  /** When a waiting run should ask again. */
  get retryAt(): number {
    return this.phase === 'rescan' ? this.rescanAt : this.spillRetryAt;
  }

  private rescanAt = 0;
  /** Whether the next pass over the pending IDs has some to claim; if not, the run only asks again. */
  private rescanFree = false;

  /**
   * Up to `want` more gbifIDs; [] when a phase just ended (ask again) or there
   * is nothing to claim right now; check `exhausted`.
   */
  async next(want: number): Promise<ClaimedId[]> {
    await this.flushSpilled();
    // --limit bounds probes and take-ups too: an export's dead hosts would otherwise bring in a probe
    // each (thousands) and a host that came back all its parked gbifIDs. Once it is reached, what is
    // parked stays parked for the next run (a probe told none was left).
    const room = this.limit > 0 ? this.limit - this.claimed : Infinity;
    if (room <= 0 && (this.probes.size > 0 || this.takeUps.length > 0)) {
      for (const probed of this.probes.values()) probed(undefined);
      this.probes.clear();
      this.takeUps.length = 0;
    }
    if (this.probes.size > 0) {
      // As many as the window has room for; the rest in the next claims.
      const probes = new Map([...this.probes].slice(0, Math.max(1, Math.min(want, room))));
      for (const host of probes.keys()) this.probes.delete(host);
      const batch = await this.ledger.claimProbes([...probes.keys()]);
      for (const claimed of batch) {
        this.takenUp.add(claimed.gbifId);
        probes.get(claimed.blockedBy as string)?.(claimed.gbifId);
        probes.delete(claimed.blockedBy as string);
      }
      for (const probed of probes.values()) probed(undefined);
      return batch;
    }
    const host = this.takeUps[0];
    if (host !== undefined) {
      const asked = Math.min(want, room);
      const batch = await this.ledger.claimBlocked(host, asked);
      // A host's take-up ends when a claim comes back short: none are left that no one holds.
      if (batch.length < asked) this.takeUps.shift();
      for (const claimed of batch) this.takenUp.add(claimed.gbifId);
      return batch;
    }
    if (room <= 0) this.phase = 'exhausted';
    want = Math.min(want, room);
    switch (this.phase) {
      case 'retry': {
        const batch = await this.ledger.claimRetryable(this.retryCursor, this.runStart, this.maxAttempts, want);
        const last = batch[batch.length - 1];
        if (last) this.retryCursor = { dueAt: last.dueAt ?? 0, gbifId: last.gbifId };
        else this.phase = 'pending';
        return batch;
      }
      case 'pending': {
        const batch = await this.ledger.claimPending(this.pendingCursor, want);
        const last = batch[batch.length - 1];
        if (last) this.pendingCursor = last.gbifId;
        else this.phase = 'spilled';
        return batch;
      }
      case 'spilled': {
        if (this.spilledInLedger === 0) this.phase = 'elsewhere';
        if (this.spilledInLedger === 0 || this.waiting) return [];
        const batch = await this.ledger.claimDeferred(want);
        // Nothing came back: the ledger holds none, whatever the count says (never spin on it).
        this.spilledInLedger = batch.length === 0 ? 0 : this.spilledInLedger - batch.length;
        return batch;
      }
      case 'elsewhere': {
        // Other workers hold pending IDs: go over the pending IDs again once some have come free, and ask again in a while.
        const asked = Date.now();
        const elsewhere = await this.ledger.pendingElsewhere(this.runStart, this.maxAttempts);
        if (!elsewhere.pending) this.phase = 'exhausted';
        else {
          this.phase = 'rescan';
          this.rescanFree = elsewhere.free;
          // Asking reads the pending gbifIDs others hold, millions when their hosts are down: a few times as long between.
          this.rescanAt = Date.now() + Math.max(this.waitAfterSpills(ELSEWHERE_POLL_MS), 4 * (Date.now() - asked));
        }
        return [];
      }
      case 'rescan': {
        if (this.waiting) return [];
        if (!this.rescanFree) this.phase = 'elsewhere';
        else {
          // Due ones first, as in the first pass: a failed gbifID handed back stays failed, and only this phase claims it.
          this.retryCursor = { dueAt: -1, gbifId: 0 };
          this.pendingCursor = 0;
          this.phase = 'retry';
        }
        return [];
      }
      default:
        return [];
    }
  }

  /**
   * The next batch, as next(), each gbifID with the stored copies of its
   * images' URLs looked up (true) unless one of its hosts is `open`: those
   * are set aside at once, and after the first runs over an export they are
   * most of it (looking each of their URLs up was half of setting 1.6M aside).
   */
  async nextWithCopies(want: number, open: (host: string) => boolean): Promise<[ClaimedId, boolean][]> {
    const batch = await this.next(want);
    const taken = batch.filter((claimed) => !claimed.images.some((img) => open(img.host)));
    if (taken.length === 0) return batch.map((claimed) => [claimed, false]);
    const withCopies = new Map((await this.ledger.withStoredCopies(taken)).map((claimed) => [claimed.gbifId, claimed]));
    return batch.map((claimed) => {
      const copied = withCopies.get(claimed.gbifId);
      return copied ? [copied, true] : [claimed, false];
    });
  }

  /** Counts an ID taken into the window (for --limit); `again`: claimed again by a take-up, counted only if this run had not counted it. */
  admitted(gbifId: number, again = false): void {
    if (this.limit === 0) return;
    if (again && this.counted.has(gbifId)) return;
    this.counted.add(gbifId);
    this.claimed++;
  }

  /**
   * Sets an ID aside until its host's queue has room (`suspect`: until its
   * host, suspected down, opens or answers); `putBack`: it had been admitted.
   */
  spill(gbifId: number, how: { readonly suspect?: boolean; readonly putBack?: boolean } = {}): void {
    this.spilledNow.push(gbifId);
    if (how.suspect) this.spilledSuspect = true;
    else this.spilledSaturated = true;
    if (!how.putBack) return;
    if (this.limit > 0) this.claimed--;
    // Put back after the last claim: the run is not over until it has been claimed again.
    if (this.phase === 'exhausted') this.phase = 'spilled';
  }

  private async flushSpilled(): Promise<void> {
    if (this.spilledNow.length === 0) return;
    const ids = this.spilledNow;
    this.spilledNow = [];
    await this.ledger.deferIds(ids);
    this.spilledInLedger += ids.length;
  }

  /** Called when a whole batch of set-aside IDs found their hosts still saturated, or still suspected down. */
  backOffSpilled(): void {
    if (this.phase !== 'spilled') return;
    this.spillRetryAt = Date.now() + this.waitAfterSpills(SPILL_RETRY_MS);
  }

  /** How long to wait before looking at set-aside IDs again: longer if only suspect hosts set them aside. Starts the next count. */
  private waitAfterSpills(otherwise: number): number {
    const wait = this.spilledSuspect && !this.spilledSaturated ? SUSPECT_RETRY_MS : otherwise;
    this.spilledSaturated = this.spilledSuspect = false;
    return wait;
  }
}
