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
import type { Logger } from 'pino';
import { FetchError, PermanentError } from '../errors.js';
import { fetchImage, type FetchedBody, type FetchResult, type FetchSettings } from '../fetch/fetch-image.js';
import type { ClaimedId, DownloadLedger, HostRate } from '../ledger/ledger.js';
import type { Publisher } from '../store/publisher.js';
import type { ValidatedImage } from '../validate/validate-image.js';
import { afterFailure } from './after-failure.js';
import { Claims } from './claims.js';
import { SharedFetches } from './shared-fetches.js';
import { linkStored, linkUnit, storedDocument } from './stored-links.js';
import { HostQueues } from './host-queues.js';
import { SharedHosts } from './shared-hosts.js';
import { FailingHosts } from './failing-hosts.js';
import type { HostState } from './host-state.js';
import { IiifDocuments, readDocument, type ReadDocument } from './iiif-documents.js';
import { Job, NO_DERIVE, type DeriveSettings } from './job.js';
import { JobWindow } from './job-window.js';
import { imageTask, nextRung, partTasks, type Task } from './task.js';
import { RunTally } from './tally.js';

export interface SchedulerSettings {
  readonly out: string;
  /** This run's own folder of temporaries (inside out). */
  readonly temps: string;
  readonly concurrency: number;
  readonly perHost: number;
  readonly retries: number;
  readonly breakerThreshold: number;
  readonly breakerCooldownMs: number;
  readonly breakerWindowMs: number;
  readonly maxAttempts: number;
  /** Stop after this many gbifIDs (0: no limit). */
  readonly limit: number;
  readonly fetch: FetchSettings;
  /**
   * Decodes (and, where needed, converts) a fetched body, and leaves what is
   * to be stored at the path: a body given in memory is written there.
   * Throws a PermanentError when it is no usable image.
   */
  readonly validate: (path: string, body?: Buffer) => Promise<ValidatedImage>;
  /** Derivatives to publish with every gbifID (run --derive). */
  readonly derive?: DeriveSettings;
  readonly retryBaseMs?: number;
  /**
   * Throws once the run has lost its hold on the ledger (a worker whose lease
   * ran out). Asked every second, not only before a publish: a worker with
   * nothing to publish (its hosts' slots went with its lease) must stop too.
   */
  readonly checkHold?: () => void;
}

/**
 * gbifIDs claimed at once, and held in the window: eight per request slot.
 * On a shared ledger what a worker holds is what the others cannot take, so
 * at the end of an export the slowest worker's window is the tail everyone
 * waits for: it scales with the worker's concurrency rather than a fixed 256.
 */
const WINDOW_PER_SLOT = 8;
const MIN_WINDOW = 64;
const MAX_CLAIM_BATCH = 256;
/** How often a run asks whether it still holds the ledger. */
const HOLD_CHECK_MS = 1000;

export class Scheduler {
  readonly tally = new RunTally();
  private readonly hosts: HostQueues<Task>;
  private readonly window: JobWindow;
  private readonly shared = new SharedFetches<Task>();
  private readonly iiif = new IiifDocuments();
  private readonly windowSize: number;
  private readonly claimBatch: number;
  private readonly hostBacklogLimit: number;
  private readonly runStart = Date.now();
  private readonly claims: Claims;
  private readonly derive: DeriveSettings;
  private readonly failing = new FailingHosts<Task>();
  /** On a ledger shared by workers: request slots per host, 429s and breakers, agreed with the others. */
  private readonly sharedHosts: SharedHosts<Task> | undefined;
  private inFlight = 0;
  /** A claim is out at the ledger. */
  private claiming = false;
  /** Breaker changes on their way to the ledger. */
  private writes = 0;
  /** Bodies fetched and being validated or stored, out of their request slots. */
  private processing = 0;
  private stopping = false;
  private wakeTimer: NodeJS.Timeout | undefined;
  private finish!: () => void;
  private fail!: (err: unknown) => void;

  constructor(
    private readonly ledger: DownloadLedger,
    private readonly publisher: Publisher,
    private readonly settings: SchedulerSettings,
    private readonly log: Logger,
    /** Breakers open when the run starts (an earlier run's, or another worker's), by host. */
    openBreakers: ReadonlyMap<string, number>,
  ) {
    this.windowSize = Math.max(MIN_WINDOW, settings.concurrency * WINDOW_PER_SLOT);
    this.claimBatch = Math.min(MAX_CLAIM_BATCH, this.windowSize / 2);
    this.hostBacklogLimit = Math.max(32, settings.perHost * 16);
    this.hosts = new HostQueues<Task>(settings, openBreakers, (task) => this.promoteWaiter(task));
    this.claims = new Claims(ledger, this.runStart, settings.maxAttempts, settings.limit);
    if (ledger.hostBudgets) {
      this.sharedHosts = new SharedHosts<Task>(ledger.hostBudgets, this.hosts, settings.perHost, {
        breakerOpened: (host, until) => this.openedElsewhere(host, until),
        changed: () => this.pump(),
        failed: (err) => this.log.warn({ err: String(err) }, 'could not agree host budgets with the other workers; trying again'),
      });
    }
    this.derive = settings.derive ?? NO_DERIVE;
    this.window = new JobWindow(ledger, publisher, this.tally, log, settings.out, this.derive, { onError: (err) => this.fail(err), onPublished: () => this.pump() });
  }

  run(signal?: AbortSignal): Promise<RunTally> {
    signal?.addEventListener('abort', () => this.stop(), { once: true });
    this.sharedHosts?.start();
    return new Promise<RunTally>((resolve, reject) => {
      const check = this.settings.checkHold;
      const holdTimer = check && setInterval(() => {
        try {
          check();
        } catch (err) {
          this.fail(err);
        }
      }, HOLD_CHECK_MS);
      this.finish = () => {
        clearInterval(holdTimer);
        void this.sharedHosts?.stop();
        resolve(this.tally.close());
      };
      this.fail = (err) => {
        clearInterval(holdTimer);
        if (this.wakeTimer) clearTimeout(this.wakeTimer);
        void this.sharedHosts?.stop();
        // Requests in flight end now, not at their timeouts: nothing of theirs will be recorded.
        for (const job of this.window.unsettled()) job.abort.abort();
        reject(err);
      };
      this.pump();
    });
  }

  /** What this run measured at each host it fetched from: images, milliseconds of requests, the cap they ran at. */
  hostRates(): HostRate[] {
    return [...this.hosts.all()].filter((h) => h.measuredImages > 0).map((h) => ({ host: h.name, images: h.measuredImages, ms: h.measuredMs, cap: this.settings.perHost }));
  }

  /** Hosts cooling down and hosts whose breaker is open, for the live display. */
  hostsHeld(): { cooling: number; open: number } {
    return this.hosts.held(Date.now());
  }

  private stop(): void {
    this.stopping = true;
    for (const job of this.window.unsettled()) this.window.setAside(job);
    this.pump();
  }

  private pump(): void {
    try {
      if (this.wakeTimer) clearTimeout(this.wakeTimer);
      this.wakeTimer = undefined;
      const now = Date.now();
      // A failing host whose window has filled opens now, whether or not another failure has come.
      for (const host of this.failing.openElapsed(now)) this.breakerOpened(host);
      if (!this.stopping) this.fillWindow();
      while (this.inFlight < this.settings.concurrency && this.inFlight + this.processing < 2 * this.settings.concurrency) {
        const task = this.hosts.next(now);
        if (!task) break;
        this.start(task);
      }
      const idle = !this.claiming && this.writes === 0 && !this.window.publishing && this.inFlight === 0 && this.processing === 0;
      if (this.window.size === 0 && (this.claims.exhausted || this.stopping) && idle) {
        this.finish();
        return;
      }
      this.armWake(now);
    } catch (err) {
      this.fail(err);
    }
  }

  private armWake(now: number): void {
    const wake = Math.min(this.claims.waiting ? this.claims.retryAt : Infinity, this.hosts.nextWake(now), this.failing.nextWindowEnd());
    if (wake === Infinity) return;
    if (this.wakeTimer) clearTimeout(this.wakeTimer);
    this.wakeTimer = setTimeout(() => this.pump(), Math.max(1, wake - Date.now()));
  }

  private enqueue(task: Task, notBefore?: number): void {
    this.hosts.enqueue(task, notBefore);
    this.sharedHosts?.wanted(this.host(task.image.host));
  }

  private host(name: string) {
    return this.hosts.host(name);
  }

  /** Claims the next batch while the window has room: one claim out at a time, and the pump goes on meanwhile. */
  private fillWindow(): void {
    if (this.claiming || this.window.size >= this.windowSize || this.claims.exhausted || this.claims.waiting) return;
    this.claiming = true;
    this.claims.next(this.claimBatch).then(
      (batch) => {
        this.claiming = false;
        // Stopping: what came back stays claimed until the run lets go of the ledger, which hands it back.
        if (this.stopping || batch.length === 0) return this.pump();
        let admitted = 0;
        for (const claimed of batch) if (this.admit(claimed)) admitted++;
        // Set-aside IDs whose hosts are still saturated: look again later, not on every event.
        if (admitted === 0) this.claims.backOffSpilled();
        this.pump();
      },
      (err: unknown) => this.fail(err),
    );
  }

  /** A write the run does not wait on (a breaker's change); the run ends only once it is in. */
  private record(write: Promise<void>): void {
    this.writes++;
    write.then(
      () => {
        this.writes--;
        this.pump();
      },
      (err: unknown) => this.fail(err),
    );
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
    this.window.add(job);
    const blocked = claimed.images.find((img) => this.host(img.host).isOpen(now));
    if (blocked) {
      this.setAside(job, undefined, blocked.host);
      return true;
    }
    for (const image of claimed.images) {
      const task = imageTask(job, image, this.settings.temps);
      const read = this.iiif.get(image.url);
      if (read) this.expand(task, read);
      else this.fetchOrLink(task);
    }
    return true;
  }

  /** A URL being fetched is waited on; one stored under another gbifID is linked; otherwise it is queued on its host. */
  private fetchOrLink(task: Task): void {
    if (this.shared.joinIfFetching(task.image.url, task)) return;
    const copy = task.image.stored;
    if (!copy) return this.submit(task);
    const tasks = copy.parts ? partTasks(task, storedDocument(copy, copy.parts), this.settings.temps) : [task];
    linkStored(this.settings.out, copy, tasks, {
      linked: (t, outcome) => {
        this.tally.shared++;
        this.window.imageDone(t, outcome);
        this.pump();
      },
      // The stored copy is gone (moved or deleted by hand): fetch it after all.
      missing: (t) => {
        this.submit(t);
        this.pump();
      },
    });
  }

  /**
   * A request holds its slot until its body is in; validating and storing it
   * happen outside the slot, so the next request starts meanwhile (at most
   * `concurrency` bodies wait on validation, which bounds their memory).
   */
  private start(task: Task): void {
    this.inFlight++;
    this.host(task.image.host).inFlight++;
    this.attempt(task)
      .catch((err: unknown) => this.fail(err))
      .finally(() => this.pump());
  }

  private async attempt(task: Task): Promise<void> {
    const host = this.host(task.image.host);
    let fetchedBody: FetchedBody;
    const sent = performance.now();
    try {
      fetchedBody = await fetchImage(task.image.url, task.temp, this.settings.fetch, task.job.abort.signal);
      host.measuredImages++;
      host.measuredMs += performance.now() - sent;
    } catch (err) {
      this.inFlight--;
      host.inFlight--;
      return this.failedAttempt(task, err);
    }
    this.inFlight--;
    host.inFlight--;
    this.processing++;
    this.pump();
    try {
      await this.fetched(task, fetchedBody);
    } finally {
      this.processing--;
    }
  }

  private async fetched(task: Task, { body, json, ...received }: FetchedBody): Promise<void> {
    const host = this.host(task.image.host);
    if (host.succeeded() === 'closed_breaker') {
      this.record(this.ledger.recordBreaker(host.name, null));
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
    await Promise.all(live.map((w) => linkUnit(task.temp, w.temp, this.derive.widths)));
    for (const w of live) {
      this.tally.shared++;
      this.window.imageDone(w, result);
    }
    if (task.job.settled) await this.publisher.discard([task.temp]);
    else this.window.imageDone(task, result);
  }

  private failedAttempt(task: Task, err: unknown): void {
    const failure = err instanceof FetchError ? err : undefined;
    if (task.job.settled || !failure) {
      // Aborted with its gbifID (or stopping): hand the URL to another waiting ID.
      this.promoteWaiter(task);
      if (!failure && !task.job.settled) throw err;
      return;
    }
    const host = this.host(task.image.host);
    const next = afterFailure(failure, task, host, Date.now(), this.settings.retries, this.settings.retryBaseMs ?? 1000);
    this.failing.note(host);
    switch (next.then) {
      case 'next-rung':
        for (const t of [task, ...this.shared.finish(task.image.url)]) {
          if (nextRung(t)) this.submit(t);
          else this.window.fail(t.job, t, failure, false);
        }
        return;
      case 'fail':
        for (const t of [...this.shared.finish(task.image.url), task]) this.window.fail(t.job, t, failure, next.transient);
        return;
      case 'retry':
        if (next.throttled) {
          this.log.info({ host: host.name, until: new Date(next.at).toISOString(), status: failure.httpStatus }, 'host throttled us');
          this.sharedHosts?.noteCooldown(host.name, host.cooldownUntil);
        }
        return this.enqueue(task, next.at);
      case 'set-aside':
        // Its host opened while it was out, or it kept being throttled.
        return this.setAside(task.job, task, host.breaker === 'open' ? host.name : undefined);
      case 'breaker-opened':
        return this.breakerOpened(host, task);
    }
  }

  /** A host's breaker just opened: kept in the ledger for status and later runs; its work is set aside, pending. */
  private breakerOpened(host: HostState<Task>, task?: Task): void {
    this.record(this.ledger.recordBreaker(host.name, host.openUntil));
    this.tally.hostOpened(host.name);
    const silentFor = host.failingSince === undefined ? 0 : Date.now() - host.failingSince;
    this.log.warn({ host: host.name, failures: host.consecutiveFailures, failingForMs: silentFor, until: new Date(host.openUntil).toISOString() }, 'breaker opened');
    if (task) this.setAside(task.job, task, host.name);
    for (const waiting of host.drain()) this.setAside(waiting.job, waiting, host.name);
  }

  /** Another worker opened this host's breaker: its work here is set aside as if this worker had. */
  private openedElsewhere(host: HostState<Task>, until: number): void {
    host.restoreOpen(until);
    this.log.warn({ host: host.name, until: new Date(until).toISOString() }, 'breaker opened by another worker');
    for (const waiting of host.drain()) this.setAside(waiting.job, waiting, host.name);
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
    const notImage = new PermanentError(`${task.image.url} answered JSON where a IIIF image was expected`, 'not_image');
    let read: ReadDocument;
    try {
      if (task.part) throw notImage;
      read = await readDocument(received, body, task.temp);
    } catch (err) {
      return this.failedAttempt(task, err);
    } finally {
      await this.publisher.discard([task.temp]);
    }
    this.tally.iiifDocuments++;
    this.tally.bytes += received.bytes;
    this.iiif.remember(task.image.url, read);
    for (const t of [task, ...this.shared.finish(task.image.url)]) {
      if (t.part) this.window.fail(t.job, t, notImage, false);
      else this.expand(t, read);
    }
  }

  private expand(task: Task, read: ReadDocument): void {
    if (task.job.settled) return;
    for (const part of partTasks(task, read, this.settings.temps)) {
      if (this.host(part.image.host).isOpen(Date.now())) return this.setAside(part.job, undefined, part.image.host);
      this.submit(part);
    }
  }

  /** Fetches the task's URL, or waits on the fetch of it already under way. */
  private submit(task: Task): void {
    if (this.shared.joinIfFetching(task.image.url, task)) return;
    this.shared.fetching(task.image.url);
    this.enqueue(task);
  }

  /** Sets a gbifID aside (`blockedBy`: the host whose open breaker holds it); its task's URL, if others wait on it, goes to one of them. */
  private setAside(job: Job, task?: Task, blockedBy?: string): void {
    if (task) this.promoteWaiter(task);
    if (this.window.setAside(job) && blockedBy) this.tally.blockedBy(blockedBy);
  }
}
