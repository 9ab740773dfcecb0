/**
 * gbifIDs this run set aside behind a host's open breaker, and when to take
 * them up again within the run. A host down for a while in a long run used to
 * keep them pending until the next run, though it had come back long before
 * this one ended: the run's pass over the pending gbifIDs had gone by them.
 *
 * Remembered per host, exactly: once the host's cooldown has passed, one of
 * them is claimed again as its probe; once the host answers (its breaker
 * closed), all of them are. A probe goes out only while the run has other
 * work: a run whose only work is behind open breakers ends, as before, and
 * the next run probes them.
 *
 * Memory is bounded: at most MAX_REMEMBERED gbifIDs (a first run over an
 * export sets millions aside), and a host whose probes have failed
 * GIVE_UP_AFTER times is dead for this run: its gbifIDs are let go (they
 * stay pending for the next run), leaving room for hosts that only blink.
 * (Remembering each host's range of keys instead cost nothing in memory,
 * but a host's gbifIDs lie all over an export's key range: each host that
 * came back claimed every other host's set-aside gbifIDs again with its own.)
 */
import { IdList } from '../id-list.js';
import type { Claims } from './claims.js';
import type { BreakerState } from './host-state.js';
import type { JobWindow } from './job-window.js';

/** What the run shows of itself: a host's breaker now, its claims, its window. */
export interface RunView {
  breaker(host: string, nowMs: number): BreakerState;
  readonly claims: Claims;
  readonly window: JobWindow;
}

/** gbifIDs remembered at most, over all hosts: 8 MB, 16 with the lists' room to grow. */
const MAX_REMEMBERED = 1_000_000;
/** Failed probes (each a cooldown apart) after which a host is let go for the run. */
const GIVE_UP_AFTER = 3;
/** How often hosts holding set-aside gbifIDs are looked at: a cooldown is minutes, and a pump comes many times a second. */
const CHECK_EVERY_MS = 500;

interface Held {
  /** Its set-aside gbifIDs remembered (not its probe while that is out). */
  ids: IdList;
  /** The gbifID claimed again as its probe, until the host closes or one is set aside behind it again. */
  probe: number | undefined;
  failedProbes: number;
  /** Let go for this run: nothing more of it is remembered. */
  givenUp: boolean;
}

export class BlockedAsides {
  private readonly byHost = new Map<string, Held>();
  /** The probes out now. */
  private readonly probes = new Set<number>();
  private remembered = 0;
  private checkedAt = 0;

  constructor(private readonly run: RunView) {}

  /** A gbifID set aside behind `host`'s open breaker. */
  note(host: string, gbifId: number): void {
    let held = this.byHost.get(host);
    if (!held) this.byHost.set(host, (held = { ids: new IdList(), probe: undefined, failedProbes: 0, givenUp: false }));
    if (held.probe !== undefined) {
      // Its probe failed (or another request came first and failed): the next waits for the next cooldown.
      this.probes.delete(held.probe);
      held.probe = undefined;
      if (++held.failedProbes >= GIVE_UP_AFTER) {
        this.remembered -= held.ids.length;
        held.ids = new IdList(); // its room too: a host let go may have held many
        held.givenUp = true;
      }
    }
    if (held.givenUp || this.remembered >= MAX_REMEMBERED) return;
    held.ids.push(gbifId);
    this.remembered++;
  }

  /**
   * Hands the run's claims what to claim again now: the gbifIDs of each host
   * whose breaker has closed, and a probe for each host whose cooldown has
   * passed if the run has other work. At most every CHECK_EVERY_MS unless
   * `force`d (the run would end otherwise). True if it handed any.
   */
  takeUp(nowMs: number, force = false): boolean {
    if (this.byHost.size === 0 || (!force && nowMs - this.checkedAt < CHECK_EVERY_MS)) return false;
    this.checkedAt = nowMs;
    // Probes of many hosts whose cooldowns passed together (thousands, when an export's dead hosts opened at once) go in one claim.
    const probes: number[] = [];
    let handed = false;
    let probing: boolean | undefined;
    for (const [host, held] of this.byHost) {
      // A host let go, or whose only remembered gbifID is out as its probe, has nothing to hand; its probe's end is seen below.
      if (held.ids.length === 0 && held.probe === undefined) continue;
      const state = this.run.breaker(host, nowMs);
      if (state === 'closed') {
        // Its probe (or another request) got an answer: a later set-aside behind it starts a count of failed probes of its own.
        this.remembered -= held.ids.length;
        if (held.ids.length > 0) {
          this.run.claims.takeUp(held.ids.take()); // its room goes with its record, below
          handed = true;
        }
        if (held.probe !== undefined) this.probes.delete(held.probe);
        this.byHost.delete(host);
      } else if (state === 'half_open' && held.probe === undefined && held.ids.length > 0 && (probing ??= this.otherWork())) {
        const probe = held.ids.pop();
        this.remembered--;
        held.probe = probe;
        this.probes.add(probe);
        probes.push(probe);
      }
    }
    if (probes.length > 0) this.run.claims.takeUp(Float64Array.from(probes));
    return handed || probes.length > 0;
  }

  /** Work other than probes: the passes over the ledger go on, or the window holds a gbifID that is no probe. */
  private otherWork(): boolean {
    return !this.run.claims.passesOver || this.run.window.holdsOther((gbifId) => this.probes.has(gbifId));
  }
}
