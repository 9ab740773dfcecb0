/**
 * Hosts in a streak of failures, watched by the clock. A dead host's
 * cooldowns grow with each timeout, so its next failure, which would open its
 * breaker by the window, may be many minutes away: the scheduler asks here on
 * every wake which failing hosts have filled their window, and when the next
 * one will. The set holds only failing hosts, never all of them.
 */
import type { HostState } from './host-state.js';

export class FailingHosts<T> {
  private readonly hosts = new Set<HostState<T>>();

  /** Called after a failed attempt: the host is watched while its streak lasts. */
  note(host: HostState<T>): void {
    if (host.failingSince !== undefined && host.breaker === 'closed') this.hosts.add(host);
  }

  /** Hosts with work waiting whose window has elapsed by now; each is opened before it is returned. */
  openElapsed(now: number): HostState<T>[] {
    const opened: HostState<T>[] = [];
    for (const host of this.hosts) {
      if (host.failingSince === undefined || host.breaker !== 'closed') this.hosts.delete(host);
      else if (host.backlog > 0 && host.windowElapsed(now)) {
        this.hosts.delete(host);
        host.open(now);
        opened.push(host);
      }
    }
    return opened;
  }

  /** When the next failing host with work waiting fills its window (Infinity: none). */
  nextWindowEnd(): number {
    let at = Infinity;
    for (const host of this.hosts) if (host.backlog > 0) at = Math.min(at, host.windowEndsAt() ?? Infinity);
    return at;
  }
}
