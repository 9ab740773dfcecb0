/**
 * This worker's side of per-host politeness on a ledger shared by workers
 * (HostBudgets in ledger.ts). About once a second, and soon after a host
 * gets work it has no slot for, it tells the ledger what it wants at each
 * host and learns how many request slots it owns there, what its fair share
 * is, and whether another worker saw the host say slow down (429) or opened
 * its breaker.
 *
 * Before it gives a slot back it stops using it: a host's budget drops to
 * what it keeps (never below its requests in flight) before the exchange is
 * sent, so a slot is never in use by two workers at once.
 */
import type { HostBudgets, HostDemand } from '../ledger/ledger.js';
import type { HostQueues } from './host-queues.js';
import type { HostState } from './host-state.js';

const EXCHANGE_MS = 1000;
/** How soon after a host gets work it has no slot for (or says slow down) the worker exchanges. */
const SOON_MS = 50;

interface Queued {
  readonly job: { readonly settled: boolean };
  readonly image: { readonly host: string };
}

export interface SharedHostsHooks<T> {
  /** Another worker opened the host's breaker: its work here is set aside. */
  readonly breakerOpened: (host: HostState<T>, until: number) => void;
  /** Budgets or cooldowns changed: look for startable work. */
  readonly changed: () => void;
  readonly failed: (err: unknown) => void;
}

export class SharedHosts<T extends Queued> {
  private timer: NodeJS.Timeout | undefined;
  private soon: NodeJS.Timeout | undefined;
  private busy = false;
  private again = false;
  private stopped = false;
  /** Cooldowns this worker was told (429, Retry-After), to pass on. */
  private cooled = new Map<string, number>();

  constructor(
    private readonly budgets: HostBudgets,
    private readonly hosts: HostQueues<T>,
    private readonly perHost: number,
    private readonly hooks: SharedHostsHooks<T>,
  ) {
    hosts.shared = (host) => this.wanted(host);
  }

  start(): void {
    this.timer = setInterval(() => void this.sync(), EXCHANGE_MS);
    this.timer.unref();
  }

  /** Gives every slot back (the run is ending). */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    clearTimeout(this.soon);
  }

  /** A host was given work (HostQueues.enqueue): with no slot there, ask for one soon, not on every task. */
  private wanted(host: HostState<T>): void {
    if (host.budget === 0) this.syncSoon();
  }

  /** A host said slow down: the others hear it at once, not at the next exchange (their own exchange brings it to them). */
  noteCooldown(host: string, until: number): void {
    this.cooled.set(host, Math.max(until, this.cooled.get(host) ?? 0));
    this.syncSoon();
  }

  private syncSoon(): void {
    if (this.soon || this.stopped) return;
    this.soon = setTimeout(() => {
      this.soon = undefined;
      void this.sync();
    }, SOON_MS);
  }

  private async sync(): Promise<void> {
    if (this.stopped) return;
    if (this.busy) {
      this.again = true;
      return;
    }
    this.busy = true;
    try {
      const demand: HostDemand[] = [];
      for (const h of this.hosts.all()) {
        const want = Math.min(this.perHost, h.cap, h.backlog + h.inFlight);
        const budget = Number.isFinite(h.budget) ? h.budget : 0;
        const cooldownUntil = this.cooled.get(h.name);
        if (want === 0 && budget === 0 && cooldownUntil === undefined) continue;
        // Stop using what will go back before saying so.
        const keep = Math.min(budget, Math.max(h.inFlight, Math.min(want, h.fair)));
        h.budget = keep;
        demand.push({ host: h.name, want, keep, ...(cooldownUntil === undefined ? {} : { cooldownUntil }) });
      }
      this.cooled.clear();
      const news = await this.budgets.exchange(this.perHost, demand);
      const now = Date.now();
      for (const [name, n] of news) {
        const h = this.hosts.host(name);
        h.budget = n.slots;
        h.fair = n.fair;
        if (n.cooldownUntil !== undefined && n.cooldownUntil > h.cooldownUntil) h.cooldownUntil = n.cooldownUntil;
        if (n.breakerOpenUntil !== undefined && n.breakerOpenUntil > now && h.breaker === 'closed') this.hooks.breakerOpened(h, n.breakerOpenUntil);
      }
      this.hooks.changed();
    } catch (err) {
      this.hooks.failed(err);
    } finally {
      this.busy = false;
      if (this.again && !this.stopped) {
        this.again = false;
        void this.sync();
      }
    }
  }
}
