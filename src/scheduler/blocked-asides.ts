/**
 * gbifIDs this run set aside behind a host's open breaker, and when to take
 * them up again within the run. A host down for a while in a long run used to
 * keep them pending until the next run, though it had come back long before
 * this one ended: the run's pass over the pending gbifIDs had gone by them.
 *
 * Remembered per host, not per gbifID (a first run over an export sets
 * millions aside): the range of their keys and the last of them. Once the
 * host's cooldown has passed, that last one is claimed again as its probe;
 * once the host answers (its breaker closed), every set-aside gbifID in the
 * range is claimed again (others in it, set aside behind hosts still open,
 * are set aside once more). A probe goes out only while the run has other
 * work: a run whose only work is behind open breakers ends, as before, and
 * the next run probes them.
 */
import type { Claims } from './claims.js';
import type { BreakerState } from './host-state.js';
import type { JobWindow } from './job-window.js';

/** What the run shows of itself: a host's breaker now, its claims, its window. */
export interface RunView {
  breaker(host: string, nowMs: number): BreakerState;
  readonly claims: Claims;
  readonly window: JobWindow;
}

/** gbifIDs to claim again: those set aside with keys above `after`, up to `upTo`; or, as probes, those named. */
export type TakeUp = { readonly after: number; readonly upTo: number } | { readonly probes: readonly number[] };

interface Held {
  lo: number;
  hi: number;
  last: number;
  /** The gbifID claimed again as this host's probe, until the host closes or sets one aside again. */
  probe: number | undefined;
}

/** How often hosts holding set-aside gbifIDs are looked at: a cooldown is minutes, and a pump comes many times a second. */
const CHECK_EVERY_MS = 500;

export class BlockedAsides {
  private readonly byHost = new Map<string, Held>();
  /** The probes out now. */
  private readonly probes = new Set<number>();
  private checkedAt = 0;

  constructor(private readonly run: RunView) {}

  /** A gbifID set aside behind `host`'s open breaker. */
  note(host: string, gbifId: number): void {
    const held = this.byHost.get(host);
    if (!held) {
      this.byHost.set(host, { lo: gbifId, hi: gbifId, last: gbifId, probe: undefined });
      return;
    }
    held.lo = Math.min(held.lo, gbifId);
    held.hi = Math.max(held.hi, gbifId);
    held.last = gbifId;
    // Its probe failed (or another request came first and failed): the next waits for the next cooldown.
    if (held.probe !== undefined) this.probes.delete(held.probe);
    held.probe = undefined;
  }

  /**
   * Hands the run's claims what to claim again now: the range of each host
   * whose breaker has closed, and a probe for each host whose cooldown has
   * passed if the run has other work. At most every CHECK_EVERY_MS unless
   * `force`d (the run would end otherwise). True if it handed any.
   */
  takeUp(nowMs: number, force = false): boolean {
    const takeUps = this.due(nowMs, force);
    for (const range of takeUps) this.run.claims.takeUp(range);
    return takeUps.length > 0;
  }

  /** Work other than probes: the passes over the ledger go on, or the window holds a gbifID that is no probe. */
  private otherWork(): boolean {
    return !this.run.claims.passesOver || this.run.window.holdsOther((gbifId) => this.probes.has(gbifId));
  }

  private due(nowMs: number, force: boolean): TakeUp[] {
    if (this.byHost.size === 0 || (!force && nowMs - this.checkedAt < CHECK_EVERY_MS)) return [];
    this.checkedAt = nowMs;
    const takeUps: TakeUp[] = [];
    // Probes of many hosts whose cooldowns passed together (thousands, when an export's dead hosts opened at once) go in one claim.
    const probes: number[] = [];
    let probing: boolean | undefined;
    for (const [host, held] of this.byHost) {
      const state = this.run.breaker(host, nowMs);
      if (state === 'closed') {
        takeUps.push({ after: held.lo - 1, upTo: held.hi });
        if (held.probe !== undefined) this.probes.delete(held.probe);
        this.byHost.delete(host);
      } else if (state === 'half_open' && held.probe === undefined && (probing ??= this.otherWork())) {
        held.probe = held.last;
        this.probes.add(held.last);
        probes.push(held.last);
      }
    }
    if (probes.length > 0) takeUps.push({ probes });
    return takeUps;
  }
}
