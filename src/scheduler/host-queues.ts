/**
 * Every host the run has met, and the ones with work waiting, in
 * round-robin order. `next()` answers the pump's question "which host can
 * take a request now?": a host cooling down, at its cap or with an open
 * breaker is passed over, so it never holds a slot while it waits.
 */
import { HostState, type HostSettings } from './host-state.js';

interface Queued {
  readonly job: { readonly settled: boolean };
  readonly image: { readonly host: string };
}

export class HostQueues<T extends Queued> {
  private readonly hosts = new Map<string, HostState<T>>();
  /** Hosts with tasks waiting (a Set keeps insertion order: the round-robin). */
  private readonly active = new Set<HostState<T>>();

  constructor(
    private readonly settings: HostSettings,
    /** Breakers an earlier run opened, by host: still held until their time is up. */
    private readonly openBreakers: ReadonlyMap<string, number>,
    /** A task dropped because its gbifID was settled meanwhile (its URL's other waiters may need it). */
    private readonly onDropped: (task: T) => void,
  ) {}

  /**
   * Set on a ledger shared by workers (shared-hosts.ts): request slots come
   * from the others' exchange, and each host given work asks for some.
   */
  shared: ((host: HostState<T>) => void) | undefined;

  host(name: string): HostState<T> {
    let h = this.hosts.get(name);
    if (!h) {
      h = new HostState<T>(name, this.settings);
      // On a shared ledger a host is asked nothing until this worker owns slots there.
      if (this.shared) h.budget = 0;
      const openUntil = this.openBreakers.get(name);
      if (openUntil !== undefined) h.restoreOpen(openUntil);
      this.hosts.set(name, h);
    }
    return h;
  }

  enqueue(task: T, notBefore?: number): void {
    const host = this.host(task.image.host);
    if (notBefore === undefined) host.push(task);
    else host.delay(task, notBefore);
    this.active.add(host);
    this.shared?.(host);
  }

  /** The next task some host can start now, each host in turn. */
  next(now: number): T | undefined {
    for (const host of this.active) {
      let task = host.take(now);
      while (task?.job.settled) {
        this.onDropped(task);
        task = host.take(now);
      }
      if (host.backlog === 0) this.active.delete(host);
      if (task === undefined) continue;
      // To the back of the line.
      this.active.delete(host);
      if (host.backlog > 0) this.active.add(host);
      return task;
    }
    return undefined;
  }

  /** When the earliest waiting host can take a request (Infinity: none waits). */
  nextWake(now: number): number {
    let wake = Infinity;
    for (const h of this.active) wake = Math.min(wake, h.nextWake(now) ?? Infinity);
    return wake;
  }

  /** Every host met so far. */
  all(): IterableIterator<HostState<T>> {
    return this.hosts.values();
  }

  /** Hosts cooling down and hosts whose breaker is open, for the live display. */
  held(now: number): { cooling: number; open: number } {
    let cooling = 0;
    let open = 0;
    for (const h of this.hosts.values()) {
      if (h.breaker === 'open' && h.openUntil > now) open++;
      else if (h.cooldownUntil > now) cooling++;
    }
    return { cooling, open };
  }
}
