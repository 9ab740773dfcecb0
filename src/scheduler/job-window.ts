/**
 * The window of claimed gbifIDs, and how each one ends: every image done ->
 * handed to the publisher, all or nothing, and out of the window once it is
 * published; a failure -> failed in the ledger (a transient one with the time
 * of its next run's retry), its other fetches aborted; set aside -> left
 * pending for a later run; put back -> claimed again later in this run.
 * Whatever way it ends, its temporaries go.
 */
import type { Logger } from 'pino';
import type { FetchError } from '../errors.js';
import type { FetchResult } from '../fetch/fetch-image.js';
import type { DownloadLedger, FailedId, FailedImage, SetAsideId } from '../ledger/ledger.js';
import { PublishQueue } from '../store/publish-queue.js';
import type { Publisher } from '../store/publisher.js';
import { backoffMs } from './backoff.js';
import { unitKey, type DeriveSettings, type Job } from './job.js';
import { existsSync } from 'node:fs';
import { derivativeTemp } from '../store/layout.js';
import type { Task } from './task.js';
import type { RunTally } from './tally.js';

const RUN_RETRY_BASE_MS = 10 * 60_000;
const RUN_RETRY_CAP_MS = 24 * 3600_000;

export class JobWindow {
  private readonly jobs = new Map<number, Job>();
  private readonly publishQueue: PublishQueue;
  /** Failures (and set-aside IDs) waiting to be recorded, and whether a write of them is out: one ledger write per batch, not per gbifID. */
  private failures: FailedId[] = [];
  private asides: SetAsideId[] = [];
  private recording = false;
  private closed = false;
  /** gbifIDs complete but for derivatives being made (of images linked, not validated, in this run). */
  private deriving = 0;
  private readonly onError: (err: unknown) => void;
  private readonly onIdle: () => void;

  constructor(
    private readonly ledger: DownloadLedger,
    private readonly publisher: Publisher,
    private readonly tally: RunTally,
    private readonly log: Logger,
    private readonly out: string,
    private readonly derive: DeriveSettings,
    hooks: { readonly onError: (err: unknown) => void; readonly onPublished: () => void },
  ) {
    this.onError = hooks.onError;
    this.onIdle = hooks.onPublished;
    this.publishQueue = new PublishQueue(
      publisher,
      (items, unfinished) => {
        for (const item of items) this.jobs.delete(item.gbifId);
        // Those the ledger left pending (an image was added beside the run) are taken up by the next run.
        this.tally.idsDone += items.length - unfinished.length;
      },
      hooks.onError,
      hooks.onPublished,
    );
  }

  /** gbifIDs in the window, including those being published. */
  get size(): number {
    return this.jobs.size;
  }

  /**
   * After a run failed: nothing more is published or recorded (what waits is
   * dropped; its gbifIDs stay pending in the ledger, as after a kill). A
   * publish or a write under way ends; `publishing` says when.
   */
  close(): void {
    this.closed = true;
    this.publishQueue.close();
    this.failures = [];
    this.asides = [];
  }

  /** True while gbifIDs are waiting to be published or being published, or failures to be recorded. */
  get publishing(): boolean {
    return this.publishQueue.busy || this.recording || this.deriving > 0 || (!this.closed && (this.failures.length > 0 || this.asides.length > 0));
  }

  has(gbifId: number): boolean {
    return this.jobs.has(gbifId);
  }

  /** True if the window holds a gbifID that `except` does not pick. */
  holdsOther(except: (gbifId: number) => boolean): boolean {
    for (const gbifId of this.jobs.keys()) if (!except(gbifId)) return true;
    return false;
  }

  add(job: Job): void {
    this.jobs.set(job.gbifId, job);
  }

  /** gbifIDs not yet done, failed or set aside. */
  unsettled(): Job[] {
    return [...this.jobs.values()].filter((job) => !job.settled);
  }

  /** One image (or IIIF part) of a task's gbifID succeeded; the last one hands the gbifID to the publisher. */
  imageDone(task: Task, result: FetchResult): void {
    const job = task.job;
    if (job.settled) return;
    if (!job.done(unitKey(task.image.imageId, task.part?.index), task.image.url, result)) return;
    job.settled = true;
    // A reopened gbifID may have had more files than its new set: those go when it is published.
    const item = job.publishItem(this.out, job.claimed.storedFiles, this.derive);
    if (this.derive.widths.length === 0) return this.publishQueue.push(item);
    this.deriving++;
    this.ensureDerivatives(job.allTemps()).then(
      () => {
        this.deriving--;
        this.publishQueue.push(item);
      },
      (err: unknown) => {
        this.deriving--;
        this.onError(err);
      },
    );
  }

  /**
   * Validation wrote each fetched image's derivatives beside it; an image
   * linked instead (a stored copy, or a URL another gbifID fetched whose
   * derivatives could not be linked) has them made now, from its file. An
   * image that validated and fails now is this machine's problem: the run stops.
   */
  private async ensureDerivatives(temps: readonly string[]): Promise<void> {
    await Promise.all(
      temps.map(async (temp) => {
        const missing = this.derive.widths.filter((w) => !existsSync(derivativeTemp(temp, w)));
        if (missing.length > 0) await this.derive.make(temp, missing);
      }),
    );
  }

  fail(job: Job, task: Task, failure: FetchError, transient: boolean): void {
    if (job.settled) return;
    job.settled = true;
    job.cancel();
    const failures: FailedImage[] = [{ imageId: task.image.imageId, host: task.image.host, code: failure.code, httpStatus: failure.httpStatus }];
    const retryAt = transient ? Date.now() + backoffMs(job.claimed.attempts + 1, RUN_RETRY_BASE_MS, RUN_RETRY_CAP_MS) : null;
    this.failures.push({ gbifId: job.claimed.gbifId, failures, retryAt });
    void this.recordLater();
    this.tally.failed(failure.code);
    this.log.debug({ gbifId: job.claimed.gbifId, url: task.image.url, code: failure.code }, 'gbifID failed');
    this.release(job);
  }

  /** Leaves a gbifID pending for a later run (parked behind `blockedBy`, whose breaker is open; or we are stopping); false if it had already ended. */
  setAside(job: Job, blockedBy?: string): boolean {
    if (job.settled) return false;
    job.settled = true;
    job.cancel();
    if (job.claimed.dueAt === undefined) this.tally.idsSetAside++;
    else this.tally.retriesPutOff++;
    this.asides.push(blockedBy === undefined ? { gbifId: job.gbifId } : { gbifId: job.gbifId, blockedBy });
    void this.recordLater();
    this.release(job);
    return true;
  }

  /** Takes a gbifID out of the window to be claimed again later in this run (its host is suspected down); false if it had already ended. */
  putBack(job: Job): boolean {
    if (job.settled) return false;
    job.settled = true;
    job.cancel();
    this.release(job);
    return true;
  }

  /** Writes the failures and set-aside IDs gathered so far, a batch at a time, one write out at once. */
  private async recordLater(): Promise<void> {
    if (this.recording) return;
    this.recording = true;
    try {
      while ((this.failures.length > 0 || this.asides.length > 0) && !this.closed) {
        const batch = this.failures;
        const asides = this.asides;
        this.failures = [];
        this.asides = [];
        if (batch.length > 0) await this.ledger.recordFailed(batch);
        if (asides.length > 0) await this.ledger.setAside(asides);
      }
    } catch (err) {
      this.onError(err);
    } finally {
      this.recording = false;
      this.onIdle();
    }
  }

  private release(job: Job): void {
    this.jobs.delete(job.gbifId);
    void this.publisher.discard(job.allTemps());
  }
}
