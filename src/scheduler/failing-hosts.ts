/**
 * Hosts in a streak of failures, watched by the clock. A dead host's
 * cooldowns grow with each timeout, so its next failure, which would open its
 * breaker by the window, may be many minutes away: the scheduler asks here on
 * every wake which failing hosts have filled their window, and when the next
 * one will. The set holds only failing hosts, never all of them.
 */
import type { HostState } from './host-state.js';

/** Work waits on the host: in its queue, or outside the window until it opens or answers. */
function waits<T>(host: HostState<T>): boolean {
  return host.backlog > 0 || host.heldOutside;
}

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
      else if (waits(host) && host.windowElapsed(now)) {
        this.hosts.delete(host);
        host.open(now);
        opened.push(host);
      }
    }
    return opened;
  }

  /**
   * Tasks of the window at suspect hosts (each keeps its probe, and the
   * gbifIDs it had already tried), up to `most` a host: places the window
   * does not count, so that hosts not yet tried get them. A dead host keeps
   * its probe for the whole breaker window; counted, a few hundred of them
   * filled the window, and the next hosts were first tried only as those
   * opened, one breaker window after another.
   */
  probing(most: number): number {
    let n = 0;
    for (const host of this.hosts) if (host.suspect) n += Math.min(most, host.backlog + host.inFlight);
    return n;
  }

  /** When the next failing host with work waiting fills its window (Infinity: none). */
  nextWindowEnd(): number {
    let at = Infinity;
    for (const host of this.hosts) if (waits(host)) at = Math.min(at, host.windowEndsAt() ?? Infinity);
    return at;
  }
}
