/**
 * One host as the scheduler sees it: its waiting tasks, its requests in
 * flight, an adaptive cap (halved on 429s and timeouts, grown back on
 * success), a cooldown, and a circuit breaker. A host that cannot take a
 * request now is simply skipped: it never holds a global slot while it waits.
 *
 * The breaker opens on `breakerThreshold` consecutive failures, or when the
 * host has given nothing but failures (at least MIN_WINDOW_FAILURES of them)
 * for `breakerWindowMs`. The second matters because every timeout or refused
 * connection also cools the host down, ever longer: a dead host's failures
 * then come so slowly that a count alone would take days, and the run would
 * wait on it. A success or any answer ends the failing streak, so a big host
 * with failures among its successes never opens. Refusals (401, 403) are
 * answers, but `breakerThreshold` of them in a row with no success between
 * open the breaker too: a host that has barred us refuses every request.
 */
import { backoffMs } from './backoff.js';

export type BreakerState = 'closed' | 'open' | 'half_open';

export interface HostSettings {
  readonly perHost: number;
  readonly breakerThreshold: number;
  readonly breakerCooldownMs: number;
  /** Nothing but failures for this long opens the breaker. */
  readonly breakerWindowMs: number;
}

export interface Waiting<T> {
  readonly task: T;
  readonly notBefore: number;
}

const COOLDOWN_BASE_MS = 1_000;
const COOLDOWN_CAP_MS = 10 * 60_000;
const SUCCESSES_TO_GROW = 8;
/** Failures a window of nothing but failures must hold before it opens the breaker. */
export const MIN_WINDOW_FAILURES = 3;

export class HostState<T> {
  inFlight = 0;
  cap: number;
  /**
   * Request slots this worker owns at the host, on a ledger shared by workers
   * (shared-hosts.ts): it never has more in flight there. Unbounded alone.
   */
  budget = Infinity;
  /** This worker's fair share of the host's slots (shared ledger), from the last exchange. */
  fair = Infinity;
  cooldownUntil = 0;
  breaker: BreakerState = 'closed';
  openUntil = 0;
  consecutiveFailures = 0;
  /** Refusals (401, 403) in a row, with no success between. */
  consecutiveRefusals = 0;
  /** Images fetched here and the milliseconds their requests took (recheck --plan's rate at this host). */
  measuredImages = 0;
  measuredMs = 0;
  /** When the current streak of failures began (no success or answer since); undefined when not failing. */
  failingSince: number | undefined;
  /**
   * gbifIDs of this host wait outside the run's window (put back, or not
   * admitted, while it is suspect): its breaker window opens it when it
   * ends even with no task here, or on a shared ledger they may have gone
   * to a worker that has only begun to suspect it, and another window passes.
   */
  heldOutside = false;
  /** Tasks in order from queueHead; slots before it are emptied as tasks are taken. */
  private readonly queue: (T | undefined)[] = [];
  private queueHead = 0;
  private delayed: Waiting<T>[] = [];
  private cooldowns = 0;
  private successes = 0;

  constructor(
    readonly name: string,
    private readonly settings: HostSettings,
  ) {
    this.cap = settings.perHost;
  }

  get backlog(): number {
    return this.queue.length - this.queueHead + this.delayed.length;
  }

  push(task: T): void {
    this.queue.push(task);
  }

  /** Puts a task back to wait until notBefore, without holding any slot. */
  delay(task: T, notBefore: number): void {
    this.delayed.push({ task, notBefore });
  }

  /** A breaker a previous run opened (its half-open probe comes when `until` passes). */
  restoreOpen(until: number): void {
    this.breaker = 'open';
    this.openUntil = until;
  }

  /** When the breaker window ends for a host failing with its breaker closed (undefined: not failing, or too few failures yet). */
  windowEndsAt(): number | undefined {
    if (this.breaker !== 'closed' || this.failingSince === undefined || this.consecutiveFailures < MIN_WINDOW_FAILURES) return undefined;
    return this.failingSince + this.settings.breakerWindowMs;
  }

  /**
   * Suspected down: nothing but failures, at least MIN_WINDOW_FAILURES of
   * them, and its breaker window running. Such a host keeps one gbifID
   * waiting on it (its probe) and the run's window goes to other hosts
   * (suspect-hosts.ts).
   */
  get suspect(): boolean {
    return this.windowEndsAt() !== undefined;
  }

  /** True when this host has failed, and only failed, for the whole breaker window. */
  windowElapsed(now: number): boolean {
    const end = this.windowEndsAt();
    return end !== undefined && now >= end;
  }

  /** Opens the breaker now (a count or the window says the host is down). */
  open(now: number): void {
    this.breaker = 'open';
    this.openUntil = now + this.settings.breakerCooldownMs;
  }

  /**
   * A host that asked (Retry-After) to be left alone for longer than an open
   * breaker would leave it: its breaker opens until the time it gave, so its
   * work waits for a later run instead of holding this one open for hours.
   * True if it opened.
   */
  openForLongCooldown(now: number): boolean {
    if (this.breaker === 'open' || this.cooldownUntil - now <= this.settings.breakerCooldownMs) return false;
    this.breaker = 'open';
    this.openUntil = this.cooldownUntil;
    return true;
  }

  /** The breaker's state now (an open one whose cooldown has passed is half-open). */
  breakerAt(now: number): BreakerState {
    this.isOpen(now);
    return this.breaker;
  }

  /** True when the breaker lets nothing through now. */
  isOpen(now: number): boolean {
    if (this.breaker === 'open' && now >= this.openUntil) this.breaker = 'half_open';
    return this.breaker === 'open';
  }

  /** The next task this host may start now, or undefined. */
  take(now: number): T | undefined {
    if (this.cooldownUntil > now || this.isOpen(now)) return undefined;
    // Half-open: exactly one probe request.
    const limit = Math.min(this.budget, this.breaker === 'half_open' ? 1 : this.cap);
    if (this.inFlight >= limit) return undefined;
    for (let i = 0; i < this.delayed.length; i++) {
      const w = this.delayed[i] as Waiting<T>;
      if (w.notBefore <= now) {
        this.delayed.splice(i, 1);
        return w.task;
      }
    }
    if (this.queueHead < this.queue.length) {
      const task = this.queue[this.queueHead] as T;
      // The queue must not keep a taken task (and its gbifID's whole job) alive.
      this.queue[this.queueHead++] = undefined;
      if (this.queueHead === this.queue.length) {
        this.queue.length = 0;
        this.queueHead = 0;
      } else if (this.queueHead > 1024 && this.queueHead * 2 > this.queue.length) {
        this.queue.splice(0, this.queueHead);
        this.queueHead = 0;
      }
      return task;
    }
    return undefined;
  }

  /** Earliest time something here may become startable (for the scheduler's timer). */
  nextWake(now: number): number | undefined {
    if (this.backlog === 0) return undefined;
    let at = Math.max(this.cooldownUntil, this.breaker === 'open' ? this.openUntil : 0);
    if (this.queueHead >= this.queue.length) at = Math.max(at, Math.min(...this.delayed.map((d) => d.notBefore)));
    return at > now ? at : undefined;
  }

  /** Removes the waiting tasks `keep` refuses, in turn (the rest keep their order and their waits); returns them. */
  shed(keep: (task: T) => boolean): T[] {
    const removed: T[] = [];
    const kept = (task: T): boolean => {
      if (keep(task)) return true;
      removed.push(task);
      return false;
    };
    this.delayed = this.delayed.filter((w) => kept(w.task));
    const queued = (this.queue.slice(this.queueHead) as T[]).filter(kept);
    this.queue.length = 0;
    this.queueHead = 0;
    this.queue.push(...queued);
    return removed;
  }

  /** Everything waiting here, removed (when the breaker opens). */
  drain(): T[] {
    const all = [...(this.queue.slice(this.queueHead) as T[]), ...this.delayed.map((d) => d.task)];
    this.queue.length = 0;
    this.queueHead = 0;
    this.delayed = [];
    return all;
  }

  succeeded(): 'closed_breaker' | undefined {
    this.upAgain();
    this.consecutiveRefusals = 0;
    this.cooldowns = 0;
    if (this.cap < this.settings.perHost && ++this.successes >= SUCCESSES_TO_GROW) {
      this.cap++;
      this.successes = 0;
    }
    if (this.breaker !== 'closed') {
      this.breaker = 'closed';
      return 'closed_breaker';
    }
    return undefined;
  }

  /** A failure that says nothing about load (404, not an image): the host answered. */
  answered(): void {
    this.upAgain();
    if (this.breaker === 'half_open') this.breaker = 'closed';
  }

  /**
   * A refusal (401, 403): an answer, so the host is up. But a host that moved
   * to an allow-list after bulk downloads (FIELD-NOTES) refuses every
   * request, and failing its images one by one would send it a request per
   * image, hundreds of thousands of them: `breakerThreshold` refusals in a
   * row open its breaker, so its gbifIDs wait, pending, and a half-open
   * probe that is refused again keeps it open. Returns 'opened' if it opened.
   */
  refused(now: number): 'opened' | undefined {
    this.upAgain();
    this.consecutiveRefusals++;
    if (this.breaker === 'half_open' || (this.breaker === 'closed' && this.consecutiveRefusals >= this.settings.breakerThreshold)) {
      this.open(now);
      return 'opened';
    }
    return undefined;
  }

  /** A failure that may mean the host is down or overloaded. Returns 'opened' if the breaker opened. */
  failed(now: number): 'opened' | undefined {
    this.consecutiveFailures++;
    this.failingSince ??= now;
    if (this.breaker === 'half_open' || (this.breaker === 'closed' && this.consecutiveFailures >= this.settings.breakerThreshold) || this.windowElapsed(now)) {
      this.open(now);
      return 'opened';
    }
    return undefined;
  }

  /** The host answered: it is not down, whatever its streak of failures said. */
  private upAgain(): void {
    this.consecutiveFailures = 0;
    this.failingSince = undefined;
    this.heldOutside = false;
  }

  /** Slow down: no request before `until` (Retry-After), or an exponential cooldown; halve the cap. */
  coolDown(now: number, until?: number): void {
    this.cooldowns++;
    this.cap = Math.max(1, Math.floor(this.cap / 2));
    this.successes = 0;
    this.cooldownUntil = Math.max(this.cooldownUntil, until ?? now + backoffMs(this.cooldowns, COOLDOWN_BASE_MS, COOLDOWN_CAP_MS));
  }
}
