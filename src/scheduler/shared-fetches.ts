/**
 * One fetch per URL in the window: the first gbifID to need a URL fetches
 * it; others that need it meanwhile wait here, holding no slot, and get a
 * link to the same file (or the same failure). If the fetching gbifID is
 * dropped, the next waiter takes the fetch over.
 */

interface Waiter {
  readonly job: { readonly settled: boolean };
}

export class SharedFetches<T extends Waiter> {
  private readonly byUrl = new Map<string, T[]>();

  /** True (and `task` waits) if the URL is already being fetched. */
  joinIfFetching(url: string, task: T): boolean {
    const waiting = this.byUrl.get(url);
    if (!waiting) return false;
    waiting.push(task);
    return true;
  }

  /** The caller fetches this URL; later askers will wait for it. */
  fetching(url: string): void {
    this.byUrl.set(url, []);
  }

  /** The fetch is over (done or failed for good): the waiters still wanted, removed. */
  finish(url: string): T[] {
    const waiting = this.byUrl.get(url) ?? [];
    this.byUrl.delete(url);
    return waiting.filter((w) => !w.job.settled);
  }

  /** The fetching gbifID was dropped: the first waiter still wanted becomes the fetcher. */
  handOver(url: string): T | undefined {
    const waiting = this.byUrl.get(url);
    if (!waiting) return undefined;
    const next = waiting.findIndex((w) => !w.job.settled);
    if (next < 0) {
      this.byUrl.delete(url);
      return undefined;
    }
    return waiting.splice(0, next + 1)[next];
  }
}
