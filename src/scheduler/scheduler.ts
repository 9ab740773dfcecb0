/**
 * The download scheduler. Pull, not push: a bounded window of claimed
 * gbifIDs, a queue per host, and a pump that, whenever anything changes,
 * asks "is a task ready on some host? start it" until the global limit is
 * reached, and "are we finished?" A host that is cooling down, at its cap or
 * open is skipped, so it never holds a slot while it waits.
 *
 * A gbifID is all or nothing: its images become temporaries, and only when
 * every one has succeeded is it handed to the publisher. A permanent failure
 * fails it (and aborts its siblings); a breaker opening sets it aside,
 * pending, for a later run. An image URL shared by gbifIDs in the window is
 * fetched once; one already stored under another gbifID is linked, not fetched.
 */
import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import { FetchError, PermanentError, ThrottledError, type FailureKind } from '../errors.js';
import { fetchImage, type FetchedBody, type FetchResult, type FetchSettings } from '../fetch/fetch-image.js';
import { readIiif } from '../iiif/document.js';
import type { ClaimedId, ClaimedImage, DownloadLedger, FailedImage } from '../ledger/ledger.js';
import { finalPath, tempPath } from '../store/layout.js';
import { PublishQueue } from '../store/publish-queue.js';
import { linkOrCopy, type Publisher } from '../store/publisher.js';
import type { ValidatedImage } from '../validate/validate-image.js';
import { backoffMs } from './backoff.js';
import { Claims } from './claims.js';
import { SharedFetches } from './shared-fetches.js';
import { HostState } from './host-state.js';
import { IiifDocuments, type ReadDocument } from './iiif-documents.js';
import { Job, unitKey } from './job.js';
import { RunTally } from './tally.js';

export interface SchedulerSettings {
  readonly out: string;
  readonly concurrency: number;
  readonly perHost: number;
  readonly retries: number;
  readonly breakerThreshold: number;
  readonly breakerCooldownMs: number;
  readonly maxAttempts: number;
  /** Stop after this many gbifIDs (0: no limit). */
  readonly limit: number;
  readonly fetch: FetchSettings;
  /** Decodes (and, where needed, converts) a fetched body; throws a PermanentError when it is no usable image. */
  readonly validate: (path: string, body?: Buffer) => Promise<ValidatedImage>;
  readonly retryBaseMs?: number;
}

interface Task {
  readonly job: Job;
  /** For a IIIF part, the identifier's row with the URL and host of the request now tried. */
  image: ClaimedImage;
  readonly temp: string;
  attempts: number;
  throttles: number;
  /** Set for one image of an expanded IIIF identifier: its canvas and the requests to try, in order. */
  readonly part?: { readonly index: number; readonly requests: readonly string[]; rung: number };
}

const MAX_THROTTLES = 20;
const CLAIM_BATCH = 256;
const RUN_RETRY_BASE_MS = 10 * 60_000;
const RUN_RETRY_CAP_MS = 24 * 3600_000;

export class Scheduler {
  readonly tally = new RunTally();
  private readonly hosts = new Map<string, HostState<Task>>();
  /** Hosts with tasks waiting, in round-robin order (a Set keeps insertion order). */
  private readonly active = new Set<HostState<Task>>();
  private readonly jobs = new Map<number, Job>();
  private readonly shared = new SharedFetches<Task>();
  private readonly iiif = new IiifDocuments();
  private readonly publishQueue: PublishQueue;
  private readonly windowSize: number;
  private readonly hostBacklogLimit: number;
  private readonly runStart = Date.now();
  private readonly openBreakers: Map<string, number>;
  private readonly claims: Claims;
  private inFlight = 0;
  private stopping = false;
  private wakeTimer: NodeJS.Timeout | undefined;
  private finish!: () => void;
  private fail!: (err: unknown) => void;

  constructor(
    private readonly ledger: DownloadLedger,
    private readonly publisher: Publisher,
    private readonly settings: SchedulerSettings,
    private readonly log: Logger,
  ) {
    this.windowSize = Math.max(256, settings.concurrency * 8);
    this.hostBacklogLimit = Math.max(32, settings.perHost * 16);
    this.openBreakers = ledger.openBreakers();
    this.claims = new Claims(ledger, this.runStart, settings.maxAttempts, settings.limit);
    this.publishQueue = new PublishQueue(
      publisher,
      (items) => {
        for (const item of items) this.jobs.delete(item.gbifId);
        this.tally.idsDone += items.length;
      },
      (err) => this.fail(err),
      () => this.pump(),
    );
  }

  run(signal?: AbortSignal): Promise<RunTally> {
    signal?.addEventListener('abort', () => this.stop(), { once: true });
    return new Promise<RunTally>((resolve, reject) => {
      this.finish = () => resolve(this.tally.close());
      this.fail = reject;
      this.pump();
    });
  }

  /** Hosts cooling down and hosts whose breaker is open, for the live display. */
  hostsHeld(): { cooling: number; open: number } {
    const now = Date.now();
    let cooling = 0;
    let open = 0;
    for (const h of this.hosts.values()) {
      if (h.breaker === 'open' && h.openUntil > now) open++;
      else if (h.cooldownUntil > now) cooling++;
    }
    return { cooling, open };
  }

  private stop(): void {
    this.stopping = true;
    for (const job of [...this.jobs.values()]) if (!job.settled) this.setAside(job);
    this.pump();
  }

  private pump(): void {
    try {
      if (this.wakeTimer) clearTimeout(this.wakeTimer);
      this.wakeTimer = undefined;
      if (!this.stopping) this.fillWindow();
      const now = Date.now();
      while (this.inFlight < this.settings.concurrency) {
        const task = this.nextTask(now);
        if (!task) break;
        this.start(task);
      }
      if (this.jobs.size === 0 && (this.claims.exhausted || this.stopping) && !this.publishQueue.busy && this.inFlight === 0) {
        this.finish();
        return;
      }
      this.armWake(now);
    } catch (err) {
      this.fail(err);
    }
  }

  private armWake(now: number): void {
    let wake = this.claims.waitingOnSpilled ? this.claims.spillRetryAt : Infinity;
    for (const h of this.active) wake = Math.min(wake, h.nextWake(now) ?? Infinity);
    if (wake !== Infinity) this.wakeAt(wake);
  }

  private wakeAt(at: number): void {
    if (this.wakeTimer) clearTimeout(this.wakeTimer);
    this.wakeTimer = setTimeout(() => this.pump(), Math.max(1, at - Date.now()));
  }

  private nextTask(now: number): Task | undefined {
    // Round-robin over hosts with work: each gets its turn, none is waited on.
    for (const host of this.active) {
      let task = host.take(now);
      while (task?.job.settled) {
        // Its gbifID already failed or was set aside: drop it, but not the URL's other waiters.
        this.promoteWaiter(task);
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

  private enqueue(task: Task, notBefore?: number): void {
    const host = this.host(task.image.host);
    if (notBefore === undefined) host.push(task);
    else host.delay(task, notBefore);
    this.active.add(host);
  }

  private host(name: string): HostState<Task> {
    let h = this.hosts.get(name);
    if (!h) {
      h = new HostState<Task>(name, this.settings);
      // A breaker opened by an earlier run still holds until its time is up.
      const openUntil = this.openBreakers.get(name);
      if (openUntil !== undefined) h.restoreOpen(openUntil);
      this.hosts.set(name, h);
    }
    return h;
  }

  private fillWindow(): void {
    while (this.jobs.size < this.windowSize && !this.claims.exhausted && !this.claims.waitingOnSpilled) {
      const batch = this.claims.next(CLAIM_BATCH);
      if (batch.length === 0) continue;
      let admitted = 0;
      for (const claimed of batch) if (this.admit(claimed)) admitted++;
      // Set-aside IDs whose hosts are still saturated: look again later, not on every event.
      if (admitted === 0) this.claims.backOffSpilled();
    }
  }

  private admit(claimed: ClaimedId): boolean {
    if (claimed.images.length === 0) return false;
    const now = Date.now();
    if (claimed.images.some((img) => this.host(img.host).backlog >= this.hostBacklogLimit)) {
      // One slow host must not fill the window: set the ID aside for later in this run.
      this.claims.spill(claimed.gbifId);
      return false;
    }
    this.claims.admitted();
    const job = new Job(claimed);
    this.jobs.set(claimed.gbifId, job);
    if (claimed.images.some((img) => this.host(img.host).isOpen(now))) {
      this.setAside(job);
      return true;
    }
    for (const image of claimed.images) {
      const task: Task = { job, image, temp: tempPath(this.settings.out, claimed.gbifId, image.imageIndex), attempts: 0, throttles: 0 };
      job.addTemp(unitKey(image.imageId), task.temp);
      const read = this.iiif.get(image.url);
      if (read) this.expand(task, read);
      else if (!this.shared.joinIfFetching(image.url, task)) this.fetchOrLink(task);
    }
    return true;
  }

  /** A URL stored under another gbifID is linked; otherwise it is queued on its host. */
  private fetchOrLink(task: Task): void {
    const copy = this.ledger.storedCopy(task.image.url);
    if (!copy) {
      this.shared.fetching(task.image.url);
      this.enqueue(task);
      return;
    }
    const source = finalPath(this.settings.out, copy.gbifId, copy.fileIndex);
    linkOrCopy(source, task.temp).then(
      () => {
        this.tally.shared++;
        this.imageDone(task, { ...copy.image });
        this.pump();
      },
      () => {
        // The stored copy is gone (moved or deleted by hand): fetch it after all.
        if (this.shared.joinIfFetching(task.image.url, task)) return;
        this.shared.fetching(task.image.url);
        this.enqueue(task);
        this.pump();
      },
    );
  }

  private start(task: Task): void {
    const host = this.host(task.image.host);
    this.inFlight++;
    host.inFlight++;
    fetchImage(task.image.url, task.temp, this.settings.fetch, task.job.abort.signal)
      .then(
        (result) => this.fetched(task, result),
        (err: unknown) => this.failedAttempt(task, err),
      )
      .catch((err: unknown) => this.fail(err))
      .finally(() => {
        this.inFlight--;
        host.inFlight--;
        this.pump();
      });
  }

  private async fetched(task: Task, { body, json, ...received }: FetchedBody): Promise<void> {
    const host = this.host(task.image.host);
    if (host.succeeded() === 'closed_breaker') {
      this.ledger.recordBreaker(host.name, null);
      this.log.info({ host: host.name }, 'breaker closed: probe succeeded');
    }
    if (json) return this.readDocument(task, received, body);
    this.tally.fetched(received.bytes);
    let result: FetchResult;
    try {
      const image = await this.settings.validate(task.temp, body);
      result = { ...received, ...(image.stored ?? {}), width: image.width, height: image.height, receivedFormat: image.receivedFormat };
    } catch (err) {
      await this.publisher.discard([task.temp]);
      return this.failedAttempt(task, err);
    }
    const live = this.shared.finish(task.image.url);
    await Promise.all(live.map((w) => linkOrCopy(task.temp, w.temp)));
    for (const w of live) {
      this.tally.shared++;
      this.imageDone(w, result);
    }
    if (task.job.settled) await this.publisher.discard([task.temp]);
    else this.imageDone(task, result);
  }

  private failedAttempt(task: Task, err: unknown): void {
    const failure = err instanceof FetchError ? err : undefined;
    if (task.job.settled || !failure) {
      // Aborted with its gbifID (or stopping): hand the URL to another waiting ID.
      this.promoteWaiter(task);
      if (!failure && !task.job.settled) throw err;
      return;
    }
    const now = Date.now();
    const host = this.host(task.image.host);
    const kind: FailureKind = failure.kind;
    if (kind === 'permanent' && task.part && failure.httpStatus !== undefined && task.part.rung + 1 < task.part.requests.length) {
      // The server refused this size (or this URL): the next request on the ladder.
      host.answered();
      for (const t of [task, ...this.shared.finish(task.image.url)]) this.nextRung(t, failure);
      return;
    }
    if (kind === 'permanent') {
      host.answered();
      for (const w of this.shared.finish(task.image.url)) this.failJob(w.job, w, failure, false);
      this.failJob(task.job, task, failure, false);
      return;
    }
    if (kind === 'throttled') {
      host.coolDown(now, (failure as ThrottledError).retryAt);
      this.log.info({ host: host.name, until: new Date(host.cooldownUntil).toISOString(), status: failure.httpStatus }, 'host throttled us');
      if (++task.throttles > MAX_THROTTLES) return this.setAside(task.job, task);
      this.enqueue(task, host.cooldownUntil);
      return;
    }
    if (failure.code === 'timeout' || failure.code === 'connect_timeout' || kind === 'host_down') host.coolDown(now);
    const opened = host.failed(now) === 'opened';
    if (opened) {
      this.ledger.recordBreaker(host.name, host.openUntil);
      this.tally.hostOpened(host.name);
      this.log.warn({ host: host.name, failures: host.consecutiveFailures, until: new Date(host.openUntil).toISOString() }, 'breaker opened');
      this.setAside(task.job, task);
      for (const waiting of host.drain()) this.setAside(waiting.job, waiting);
      return;
    }
    if (host.isOpen(now)) return this.setAside(task.job, task); // it opened while this request was out
    if (++task.attempts < this.settings.retries) {
      this.enqueue(task, now + backoffMs(task.attempts, this.settings.retryBaseMs ?? 1000, 30_000));
      return;
    }
    for (const w of this.shared.finish(task.image.url)) this.failJob(w.job, w, failure, true);
    this.failJob(task.job, task, failure, true);
  }

  /** The fetch of a shared URL was dropped with its gbifID: another waiting ID takes it over. */
  private promoteWaiter(task: Task): void {
    const heir = this.shared.handOver(task.image.url);
    if (heir) this.enqueue(heir);
  }

  /**
   * A JSON body where an image was expected: a IIIF manifest or image
   * service becomes its images (for every gbifID waiting on the URL, and for
   * later ones in this run); anything else fails as not_image.
   */
  private async readDocument(task: Task, received: FetchResult, body: Buffer | undefined): Promise<void> {
    let read: ReadDocument;
    try {
      const text = (body ?? (await readFile(task.temp))).toString('utf8');
      await this.publisher.discard([task.temp]);
      if (task.part) throw new PermanentError(`${task.image.url} answered JSON where a IIIF image was expected`, 'not_image');
      const document = readIiif(text, received.finalUrl);
      read = { document, outcome: { ...received, receivedFormat: `iiif-${document.kind}` } };
    } catch (err) {
      return this.failedAttempt(task, err);
    }
    this.tally.iiifDocuments++;
    this.tally.bytes += received.bytes;
    this.iiif.remember(task.image.url, read);
    for (const t of [task, ...this.shared.finish(task.image.url)]) {
      if (t.part) this.failJob(t.job, t, new PermanentError('JSON where a IIIF image was expected', 'not_image'), false);
      else this.expand(t, read);
    }
  }

  /** Replaces an identifier's task by one task per image its IIIF document describes. */
  private expand(task: Task, { document, outcome }: ReadDocument): void {
    const { job, image } = task;
    if (job.settled) return;
    job.expand(image.imageId, outcome, document.images.length);
    for (const [index, described] of document.images.entries()) {
      const url = described.requests[0] as string;
      const temp = tempPath(this.settings.out, job.gbifId, `${image.imageIndex}.${index}`);
      job.addTemp(unitKey(image.imageId, index), temp);
      const part: Task = { job, image: { ...image, url, host: new URL(url).hostname }, temp, attempts: 0, throttles: 0, part: { index, requests: described.requests, rung: 0 } };
      if (this.host(part.image.host).isOpen(Date.now())) return this.setAside(job);
      if (this.shared.joinIfFetching(url, part)) continue;
      this.shared.fetching(url);
      this.enqueue(part);
    }
  }

  /** The next request for a IIIF image after its server refused one; the gbifID fails when none is left. */
  private nextRung(task: Task, failure: FetchError): void {
    const part = task.part;
    if (!part || part.rung + 1 >= part.requests.length) return this.failJob(task.job, task, failure, false);
    part.rung++;
    const url = part.requests[part.rung] as string;
    task.image = { ...task.image, url, host: new URL(url).hostname };
    task.attempts = 0;
    if (this.shared.joinIfFetching(url, task)) return;
    this.shared.fetching(url);
    this.enqueue(task);
  }

  private imageDone(task: Task, result: FetchResult): void {
    const job = task.job;
    if (job.settled) return;
    if (!job.done(unitKey(task.image.imageId, task.part?.index), task.image.url, result)) return;
    job.settled = true;
    this.publishQueue.push(job.publishItem(this.settings.out));
  }

  private failJob(job: Job, task: Task, failure: FetchError, transient: boolean): void {
    if (job.settled) return;
    job.settled = true;
    job.abort.abort();
    const failures: FailedImage[] = [{ imageId: task.image.imageId, host: task.image.host, code: failure.code, httpStatus: failure.httpStatus }];
    const retryAt = transient ? Date.now() + backoffMs(job.claimed.attempts + 1, RUN_RETRY_BASE_MS, RUN_RETRY_CAP_MS) : null;
    this.ledger.recordFailed(job.claimed.gbifId, failures, retryAt);
    this.tally.failed(failure.code);
    this.log.debug({ gbifId: job.claimed.gbifId, url: task.image.url, code: failure.code }, 'gbifID failed');
    this.release(job);
  }

  /** Leaves a gbifID pending for a later run (its host is open, or we are stopping). */
  private setAside(job: Job, task?: Task): void {
    if (task) this.promoteWaiter(task);
    if (job.settled) return;
    job.settled = true;
    job.abort.abort();
    this.tally.idsSetAside++;
    this.release(job);
  }

  private release(job: Job): void {
    this.jobs.delete(job.gbifId);
    void this.publisher.discard(job.allTemps());
  }
}
