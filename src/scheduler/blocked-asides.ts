/**
 * Hosts with gbifIDs parked behind their open breakers, and when to take
 * them up. The ledger keeps what is parked (DownloadLedger.setAside), across
 * runs and for every worker, so the passes over the pending gbifIDs never
 * meet them: a later run over an export whose dead hosts hold millions reads
 * none of them. This is the run's side: which hosts hold some, and when.
 *
 * Once a host's cooldown has passed, one of its gbifIDs is claimed as its
 * probe; once the host answers (its breaker closed), all of them are. A
 * probe goes out while the run has other work, and once to each host whose
 * gbifIDs were parked before the run began, as a pass over them would have
 * probed it; a run whose only work is behind open breakers that have had
 * their probe ends, and the next run probes them. A host whose probes have
 * failed GIVE_UP_AFTER times (each a cooldown apart) gets none more in this
 * run: what is parked there waits for the next.
 *
 * On a ledger shared by workers, others park gbifIDs too, and a worker that
 * parked some may end (or die) before their host comes back: a worker looks
 * at the ledger's parked hosts again every so often (`others`), so the
 * hosts it has not met are probed while it has other work and taken up once
 * they answer, as its own are.
 */
import type { Claims } from './claims.js';
import type { BreakerState } from './host-state.js';
import type { JobWindow } from './job-window.js';

/** What the run shows of itself: a host's breaker now, its claims, its window. */
export interface RunView {
  breaker(host: string, nowMs: number): BreakerState;
  readonly claims: Claims;
  readonly window: JobWindow;
  /** On a shared ledger: how to look at what other workers have parked. */
  readonly others?: ParkedElsewhere;
}

/** What a worker on a shared ledger asks of the ledger's parked hosts, every `everyMs`. */
export interface ParkedElsewhere {
  /** The hosts with gbifIDs parked behind them now, with their breakers (DownloadLedger.blockedHosts). */
  parked(): Promise<ReadonlyMap<string, number | null>>;
  readonly everyMs: number;
  /** A breaker the ledger has open for a host this run took for closed (it had not met it): open here too. */
  openHere(host: string, until: number): void;
  failed(err: unknown): void;
}

/** Failed probes (each a cooldown apart) after which a host gets no more in this run. */
const GIVE_UP_AFTER = 3;
/** How often hosts holding parked gbifIDs are looked at: a cooldown is minutes, and a pump comes many times a second. */
const CHECK_EVERY_MS = 500;

/** A host's record here; `probeOwed` as below. */
const newHeld = (probeOwed: boolean): Held => ({ probe: undefined, failedProbes: 0, probeOwed });

interface Held {
  /** Its probe: being claimed, or out (its gbifID), until the host closes or one is set aside behind it again. */
  probe: 'claiming' | number | undefined;
  failedProbes: number;
  /** Its gbifIDs were parked before this run and it has had no probe yet: it gets one even if the run has no other work. */
  probeOwed: boolean;
}

export class BlockedAsides {
  private readonly byHost = new Map<string, Held>();
  /** The probes out now, and their hosts. */
  private readonly probes = new Map<number, string>();
  private checkedAt = 0;
  private lookedAt = Date.now();
  private looking = false;

  constructor(private readonly run: RunView) {}

  /** Hosts the ledger has gbifIDs parked behind as the run begins (DownloadLedger.blockedHosts). */
  parkedBefore(hosts: readonly string[]): void {
    for (const host of hosts) this.byHost.set(host, newHeld(true));
  }

  /** A gbifID set aside, and parked, behind `host`'s open breaker. */
  note(host: string, gbifId: number): void {
    // The probe of another host, set aside behind this one: that host is to be probed again, no failure of its own.
    const probeOf = this.probes.get(gbifId);
    if (probeOf !== undefined && probeOf !== host) this.endProbe(probeOf);
    let held = this.byHost.get(host);
    if (!held) this.byHost.set(host, (held = newHeld(false)));
    if (typeof held.probe === 'number') {
      // Its probe failed (or another request came first and failed): the next waits for the next cooldown.
      this.endProbe(host);
      held.failedProbes++;
    }
  }

  /**
   * Hands the run's claims what to claim now: every parked gbifID of each
   * host whose breaker has closed, and a probe for each host whose cooldown
   * has passed (see above). At most every CHECK_EVERY_MS unless `force`d
   * (the run would end otherwise). True if it handed any.
   */
  takeUp(nowMs: number, force = false): boolean {
    this.lookAgain(nowMs);
    if (this.byHost.size === 0 || (!force && nowMs - this.checkedAt < CHECK_EVERY_MS)) return false;
    this.checkedAt = nowMs;
    let handed = false;
    let probing: boolean | undefined;
    for (const [host, held] of this.byHost) {
      const state = this.run.breaker(host, nowMs);
      if (state === 'closed') {
        // Its probe (or another request) got an answer, or its breaker was closed before the run (retry-failed).
        this.endProbe(host);
        this.byHost.delete(host);
        this.run.claims.takeUp(host);
        handed = true;
      } else if (state === 'half_open' && held.probe === undefined && held.failedProbes < GIVE_UP_AFTER && (held.probeOwed || (probing ??= this.otherWork()))) {
        held.probe = 'claiming';
        held.probeOwed = false;
        this.run.claims.probe(host, (gbifId) => {
          if (held.probe !== 'claiming') return;
          if (gbifId === undefined) {
            // None left to probe it with (taken up elsewhere, or no longer pending): nothing waits on it here.
            held.probe = undefined;
            this.byHost.delete(host);
          } else {
            held.probe = gbifId;
            this.probes.set(gbifId, host);
          }
        });
        handed = true;
      }
    }
    return handed;
  }

  /** Adds the hosts other workers have parked gbifIDs behind, with their breakers as the ledger has them; one ask out at once. */
  private lookAgain(nowMs: number): void {
    const others = this.run.others;
    if (!others || this.looking || nowMs - this.lookedAt < others.everyMs) return;
    this.looking = true;
    this.lookedAt = nowMs;
    others
      .parked()
      .then((hosts) => {
        for (const [host, openUntil] of hosts) {
          if (this.byHost.has(host)) continue;
          if (openUntil !== null) others.openHere(host, openUntil);
          this.byHost.set(host, newHeld(false));
        }
      }, (err: unknown) => others.failed(err))
      .finally(() => (this.looking = false));
  }

  private endProbe(host: string): void {
    const held = this.byHost.get(host);
    if (typeof held?.probe === 'number') this.probes.delete(held.probe);
    if (held) held.probe = undefined;
  }

  /** Work other than probes: the passes over the ledger go on, or the window holds a gbifID that is no probe. */
  private otherWork(): boolean {
    return !this.run.claims.passesOver || this.run.window.holdsOther((gbifId) => this.probes.has(gbifId));
  }
}
