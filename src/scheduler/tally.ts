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

  blockedBy(host: string): void {
    this.blocked[host] = (this.blocked[host] ?? 0) + 1;
  }

  /** A gbifID set aside behind one of `hosts` was claimed again in this run (`retry`: a failed one): set aside no more (unless it is again). */
  takenUp(hosts: readonly string[], retry: boolean): void {
    if (retry) {
      this.retriesPutOff--;
      return;
    }
    const host = hosts.find((h) => (this.blocked[h] ?? 0) > 0);
    if (host === undefined) return;
    if (--(this.blocked[host] as number) === 0) delete this.blocked[host];
    this.idsSetAside--;
  }

  close(): RunTally {
    this.elapsedMs = Date.now() - this.started;
    return this;
  }
}
