/**
 * Where a task goes next, once it is admitted or its request has ended:
 * joined to a fetch of the same URL, linked from a stored copy, queued on its
 * host; a body validated and handed to its gbifID, or a IIIF document
 * expanded into its images; a failure retried, moved down the IIIF ladder,
 * failed with its gbifID, or set aside behind an open breaker. The scheduler
 * (scheduler.ts) decides when requests start; this decides what their ends mean.
 */
import type { Logger } from 'pino';
import { FetchError, PermanentError } from '../errors.js';
import type { FetchedBody, FetchResult } from '../fetch/fetch-image.js';
import type { DownloadLedger } from '../ledger/ledger.js';
import { linkOrCopy, type Publisher } from '../store/publisher.js';
import { afterFailure, type AfterFailure } from './after-failure.js';
import { FetchesElsewhere } from './fetches-elsewhere.js';
import type { FailingHosts } from './failing-hosts.js';
import type { HostQueues } from './host-queues.js';
import type { HostState } from './host-state.js';
import { IiifDocuments, readDocument, type ReadDocument } from './iiif-documents.js';
import type { DeriveSettings, Job } from './job.js';
import type { JobWindow } from './job-window.js';
import type { SchedulerSettings } from './settings.js';
import { SharedFetches, type FetchedHere } from './shared-fetches.js';
import { shedSuspect } from './suspect-hosts.js';
import type { SharedHosts } from './shared-hosts.js';
import { linkStored, linkUnit, storedDocument } from './stored-links.js';
import { nextRung, partTasks, type Task } from './task.js';
import type { RunTally } from './tally.js';

/** What the router shares with the scheduler that owns it. */
export interface RouterParts {
  readonly ledger: DownloadLedger;
  readonly publisher: Publisher;
  readonly settings: SchedulerSettings;
  readonly log: Logger;
  readonly hosts: HostQueues<Task>;
  readonly window: JobWindow;
  readonly tally: RunTally;
  readonly failing: FailingHosts<Task>;
  readonly derive: DeriveSettings;
  readonly sharedHosts: SharedHosts<Task> | undefined;
}

export interface RouterHooks {
  /** Something changed: the scheduler looks for work to start, or for its end. */
  readonly pump: () => void;
  /** A ledger write the run does not wait on but must see in before it ends. */
  readonly record: (write: Promise<void>) => void;
  /** Takes a gbifID out of the window, to be claimed again later in this run. */
  readonly putBack: (job: Job) => void;
  /** A gbifID was set aside behind `host`'s open breaker. */
  readonly blockedAside: (host: string, gbifId: number) => void;
}

export class TaskRouter {
  /** URLs being fetched, and the tasks of other gbifIDs waiting on each. */
  readonly shared = new SharedFetches<Task, FetchResult>();
  /** IIIF documents read in this run, by URL. */
  readonly iiif = new IiifDocuments();
  private readonly ledger: DownloadLedger;
  private readonly publisher: Publisher;
  private readonly settings: SchedulerSettings;
  private readonly log: Logger;
  private readonly hosts: HostQueues<Task>;
  private readonly window: JobWindow;
  private readonly tally: RunTally;
  private readonly failing: FailingHosts<Task>;
  private readonly derive: DeriveSettings;
  private readonly sharedHosts: SharedHosts<Task> | undefined;
  /** Images whose URL another worker is fetching, waiting for its stored copy. */
  readonly elsewhere: FetchesElsewhere;

  constructor(parts: RouterParts, private readonly hooks: RouterHooks) {
    this.ledger = parts.ledger;
    this.publisher = parts.publisher;
    this.settings = parts.settings;
    this.log = parts.log;
    this.hosts = parts.hosts;
    this.window = parts.window;
    this.tally = parts.tally;
    this.failing = parts.failing;
    this.derive = parts.derive;
    this.sharedHosts = parts.sharedHosts;
    this.elsewhere = new FetchesElsewhere(parts.ledger, parts.settings.sharedWaitMs, {
      resolved: (task) => {
        this.fetchOrLink(task);
        this.hooks.pump();
      },
      failed: (err) => this.log.warn({ err: String(err) }, 'could not ask after URLs other workers are fetching; asking again'),
      gaveUp: (url, waitedMs) => this.log.info({ url, waitedMs }, 'another worker has held this URL too long: fetching it here too'),
    });
  }

  /**
   * A URL being fetched is waited on, here or by another worker; one stored
   * under another gbifID is linked; otherwise it is queued on its host.
   */
  fetchOrLink(task: Task): void {
    if (this.shared.joinIfFetching(task.image.url, task)) return;
    const copy = task.image.stored;
    const here = copy ? undefined : this.shared.fetchedHere(task.image.url);
    // Its own earlier file (its gbifID failed and came back) is no copy to link: copying a file onto itself empties it.
    if (here && here.from !== task.temp) return this.linkFetchedHere(task, here);
    if (!copy && task.image.elsewhere) return this.elsewhere.wait(task);
    if (!copy) return this.submit(task);
    const tasks = copy.parts ? partTasks(task, storedDocument(copy, copy.parts), this.settings.temps) : [task];
    linkStored(this.settings.out, copy, tasks, {
      linked: (t, outcome) => {
        this.tally.shared++;
        this.window.imageDone(t, outcome);
        this.hooks.pump();
      },
      // The stored copy is gone (moved or deleted by hand): fetch it after all.
      missing: (t) => {
        this.submit(t);
        this.hooks.pump();
      },
    });
  }

  /** A body is in: a IIIF document is read, an image validated and handed to every gbifID waiting on its URL. */
  async fetched(task: Task, { body, json, ...received }: FetchedBody): Promise<void> {
    const host = this.hosts.host(task.image.host);
    if (host.succeeded() === 'closed_breaker') {
      this.hooks.record(this.ledger.recordBreaker(host.name, null));
      this.log.info({ host: host.name }, 'breaker closed: probe succeeded');
    }
    if (json) return this.readDocument(task, received, body);
    this.tally.fetched(received.bytes);
    let result: FetchResult;
    try {
      const image = await this.settings.validate(task.temp, body);
      result = { ...received, ...(image.stored ?? {}), width: image.width, height: image.height, receivedFormat: image.receivedFormat };
      // Of this temporary only: what links to it elsewhere may be a copy.
      if (image.synced) task.job.markSynced(task.temp);
    } catch (err) {
      await this.publisher.discard([task.temp]);
      return this.failedAttempt(task, err);
    }
    const live = this.shared.finish(task.image.url);
    // Remembered at once, before the waiters' links: a gbifID asking for the URL meanwhile links it too, not fetches it.
    const { job, temp: from } = task;
    // The job's map of final paths, not the job: up to 4,096 remembered fetches outlive their jobs.
    const finals = job.finals;
    if (!job.settled) this.shared.remember(task.image.url, { from, outcome: result, publishedAs: () => finals.get(from) });
    await Promise.all(live.map((w) => linkUnit(from, w.temp, this.derive.widths)));
    for (const w of live) {
      this.tally.shared++;
      this.window.imageDone(w, result);
    }
    if (job.settled) await this.publisher.discard([from]);
    else this.window.imageDone(task, result);
  }

  /**
   * Links the file a fetch here left at its temporary path; if the publish
   * has renamed it meanwhile, from the tree (its derivatives are made again);
   * fetches after all if it is in neither (its gbifID failed).
   */
  private linkFetchedHere(task: Task, here: FetchedHere<FetchResult>): void {
    const linked = () => {
      this.tally.shared++;
      this.window.imageDone(task, here.outcome);
      this.hooks.pump();
    };
    const fetch = () => {
      this.shared.forget(task.image.url);
      this.fetchOrLink(task);
      this.hooks.pump();
    };
    linkUnit(here.from, task.temp, this.derive.widths).then(linked, () => {
      // Read after the failure: a rename that made the link fail came after the gbifID was complete.
      const published = here.publishedAs();
      if (published === undefined) return fetch();
      linkOrCopy(published, task.temp).then(linked, fetch);
    });
  }

  /** A request or its check failed: retried, moved down the ladder, failed with its gbifID, or set aside. Throws what is no fetch failure. */
  failedAttempt(task: Task, err: unknown): void {
    const failure = err instanceof FetchError ? err : undefined;
    if (task.job.settled || !failure) {
      // Aborted with its gbifID (or stopping): hand the URL to another waiting ID.
      this.promoteWaiter(task);
      if (!failure && !task.job.settled) throw err;
      return;
    }
    const host = this.hosts.host(task.image.host);
    const next = afterFailure(failure, task, host, Date.now(), this.settings.retries, this.settings.retryBaseMs ?? 1000);
    this.failing.note(host);
    this.follow(next, task, failure, host);
    if (host.suspect) shedSuspect(host, this.log, (t) => this.promoteWaiter(t), this.hooks.putBack);
  }

  private follow(next: AfterFailure, task: Task, failure: FetchError, host: HostState<Task>): void {
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
  breakerOpened(host: HostState<Task>, task?: Task): void {
    this.hooks.record(this.ledger.recordBreaker(host.name, host.openUntil));
    this.tally.hostOpened(host.name);
    const silentFor = host.failingSince === undefined ? 0 : Date.now() - host.failingSince;
    this.log.warn({ host: host.name, failures: host.consecutiveFailures, refusals: host.consecutiveRefusals, failingForMs: silentFor, until: new Date(host.openUntil).toISOString() }, 'breaker opened');
    if (task) this.setAside(task.job, task, host.name);
    for (const waiting of host.drain()) this.setAside(waiting.job, waiting, host.name);
  }

  /** Another worker opened this host's breaker: its work here is set aside as if this worker had. */
  openedElsewhere(host: HostState<Task>, until: number): void {
    host.restoreOpen(until);
    this.log.warn({ host: host.name, until: new Date(until).toISOString() }, 'breaker opened by another worker');
    for (const waiting of host.drain()) this.setAside(waiting.job, waiting, host.name);
  }

  /** The fetch of a shared URL was dropped with its gbifID: another waiting ID takes it over, or is set aside if the host is open (as submit() says). */
  promoteWaiter(task: Task): void {
    const heir = this.shared.handOver(task.image.url);
    if (!heir) return;
    const host = this.hosts.host(heir.image.host);
    if (host.isOpen(Date.now())) return this.setAside(heir.job, heir, host.name);
    this.enqueue(heir);
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

  expand(task: Task, read: ReadDocument): void {
    if (task.job.settled) return;
    for (const part of partTasks(task, read, this.settings.temps)) {
      if (this.hosts.host(part.image.host).isOpen(Date.now())) return this.setAside(part.job, undefined, part.image.host);
      this.submit(part);
    }
  }

  /**
   * Fetches the task's URL, or waits on the fetch of it under way; sets it
   * aside if its host is open. A task can come here after admission (a
   * shared fetch handed over, here or by another worker; a stored copy
   * gone; the IIIF ladder): queued on an open host, it waited out the
   * cooldown (600 s by default), and the run with it.
   */
  submit(task: Task): void {
    if (this.shared.joinIfFetching(task.image.url, task)) return;
    const host = this.hosts.host(task.image.host);
    if (host.isOpen(Date.now())) return this.setAside(task.job, task, host.name);
    this.shared.fetching(task.image.url);
    this.enqueue(task);
  }

  /** Sets a gbifID aside (`blockedBy`: the host whose open breaker holds it); its task's URL, if others wait on it, goes to one of them. */
  setAside(job: Job, task?: Task, blockedBy?: string): void {
    if (task) this.promoteWaiter(task);
    if (!this.window.setAside(job, blockedBy) || !blockedBy) return;
    // The summary's counts by host are of pending gbifIDs; a failed one's retry put off is counted apart.
    this.tally.blockedBy(blockedBy, job.claimed.dueAt !== undefined);
    this.hooks.blockedAside(blockedBy, job.gbifId);
  }

  /** Queues the task on its host (not before `notBefore`); on a shared ledger the host asks the others' budgets for slots. */
  enqueue(task: Task, notBefore?: number): void {
    this.hosts.enqueue(task, notBefore);
  }
}
