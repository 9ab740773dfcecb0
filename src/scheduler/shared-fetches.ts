/**
 * One fetch per URL in the window: the first gbifID to need a URL fetches
 * it; others that need it meanwhile wait here, holding no slot, and get a
 * link to the same file (or the same failure). If the fetching gbifID is
 * dropped, the next waiter takes the fetch over.
 *
 * A fetch that succeeded is remembered a while after it ends: until its
 * gbifID is published, the ledger has no stored copy of the URL to link, so
 * a gbifID that needs it then (claimed later, or let go by another worker)
 * would fetch it again. It links the fetcher's temporary file instead, which
 * is there until the publish renames it into the tree; after that, the file
 * in the tree (the ledger's stored copy shows only once the publish commits,
 * and a gbifID claimed in between has none).
 */

interface Waiter {
  readonly job: { readonly settled: boolean };
}

/** Fetches remembered after they end: the most recent, enough for every gbifID a window holds. */
const REMEMBERED = 4096;

export interface FetchedHere<O> {
  /** The fetching task's temporary file. */
  readonly from: string;
  readonly outcome: O;
  /** Where the publish puts `from`, once its gbifID is complete; undefined before, or if it failed. */
  readonly publishedAs: () => string | undefined;
}

export class SharedFetches<T extends Waiter, O = unknown> {
  private readonly byUrl = new Map<string, T[]>();
  private readonly fetched = new Map<string, FetchedHere<O>>();

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

  /** A fetch of `url` succeeded into `from`, which its gbifID will publish. */
  remember(url: string, here: FetchedHere<O>): void {
    this.fetched.delete(url);
    this.fetched.set(url, here);
    if (this.fetched.size > REMEMBERED) this.fetched.delete(this.fetched.keys().next().value as string);
  }

  /** A succeeded fetch of `url` whose file may still be at its temporary path. */
  fetchedHere(url: string): FetchedHere<O> | undefined {
    return this.fetched.get(url);
  }

  /** Its temporary file is gone (published or discarded): the stored copy, or a fetch, serves from now on. */
  forget(url: string): void {
    this.fetched.delete(url);
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
