/** What a run did, counted as it goes (not logged per image). */
export class RunTally {
  idsDone = 0;
  idsFailed = 0;
  /** gbifIDs left pending: their host's breaker opened, a host kept throttling, or the run was stopped. */
  idsSetAside = 0;
  /** Failed gbifIDs claimed for their retry and left so (still failed, due) for the same reasons: not pending, counted apart. */
  retriesPutOff = 0;
  /** Images fetched from their hosts. */
  images = 0;
  /** Images linked from a fetch of the same URL for another gbifID. */
  shared = 0;
  /** IIIF manifests and image services read (each expanded into its images). */
  iiifDocuments = 0;
  bytes = 0;
  readonly failures: Record<string, number> = {};
  hostsOpened: string[] = [];
  /** gbifIDs set aside because a host's breaker was open, by that host. */
  readonly blocked: Record<string, number> = {};
  /** Failed gbifIDs whose retry was put off because a host's breaker was open, by that host (not in the summary). */
  readonly #retriesBlocked: Record<string, number> = {};
  readonly started = Date.now();
  elapsedMs = 0;

  fetched(bytes: number): void {
    this.images++;
    this.bytes += bytes;
  }

  failed(code: string): void {
    this.idsFailed++;
    this.failures[code] = (this.failures[code] ?? 0) + 1;
  }

  hostOpened(host: string): void {
    if (!this.hostsOpened.includes(host)) this.hostsOpened.push(host);
  }

  blockedBy(host: string, retry = false): void {
    const counts = retry ? this.#retriesBlocked : this.blocked;
    counts[host] = (counts[host] ?? 0) + 1;
  }

  /**
   * A gbifID parked behind one of `hosts` was claimed again in this run (`retry`: a failed one): set aside no more
   * (unless it is again). Counted off only where this run had set some aside behind that host: one parked by an
   * earlier run was never counted here. Which of a host's parked gbifIDs come back is the ledger's choice (by
   * key), so once all come back (the host answered) every count is right, whichever came first.
   */
  takenUp(hosts: readonly string[], retry: boolean): void {
    const counts = retry ? this.#retriesBlocked : this.blocked;
    const host = hosts.find((h) => (counts[h] ?? 0) > 0);
    if (host === undefined) return;
    if (--(counts[host] as number) === 0) delete counts[host];
    if (retry) this.retriesPutOff--;
    else this.idsSetAside--;
  }

  close(): RunTally {
    this.elapsedMs = Date.now() - this.started;
    return this;
  }
}
