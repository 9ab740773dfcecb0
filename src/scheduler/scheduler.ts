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
 * pending, for a later run, or for later in this one if the host comes back
 * while it goes on (blocked-asides.ts). An image URL shared by gbifIDs in the window is
 * fetched once; one already stored under another gbifID is linked, not fetched.
 * What each request's end means (validate, expand, retry, fail, set aside)
 * is task-router.ts's.
 */
import type { Logger } from 'pino';
import { fetchImage, type FetchedBody } from '../fetch/fetch-image.js';
import type { DownloadLedger, HostRate } from '../ledger/ledger.js';
import { admit, type AdmissionParts } from './admission.js';
import type { Publisher } from '../store/publisher.js';
import { BlockedAsides } from './blocked-asides.js';
import { Claims } from './claims.js';
import { FailingHosts } from './failing-hosts.js';
import { HostQueues } from './host-queues.js';
import { NO_DERIVE, type DeriveSettings } from './job.js';
import { JobWindow } from './job-window.js';
import type { SchedulerSettings } from './settings.js';
import { SharedHosts } from './shared-hosts.js';
import type { Task } from './task.js';
import { RunTally } from './tally.js';
import { TaskRouter } from './task-router.js';

export type { SchedulerSettings };

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
/** How often a worker on a shared ledger looks for hosts other workers have parked gbifIDs behind (at most; a cooldown if shorter). */
const LOOK_AGAIN_MS = 60_000;
/**
 * How long a run that failed waits for what is under way to settle before it
 * throws: requests end at once (aborted), but a validation may still be
 * writing its temporary and a publish renaming its files, and those must not
 * race the removal of the run's folder and the hand-back of its claims.
 */
const SETTLE_MS = 10_000;

export class Scheduler {
  readonly tally = new RunTally();
  private readonly hosts: HostQueues<Task>;
  private readonly window: JobWindow;
  private readonly router: TaskRouter;
  private readonly windowSize: number;
  private readonly claimBatch: number;
  private readonly admission: AdmissionParts;
  private readonly runStart = Date.now();
  private readonly claims: Claims;
  private readonly derive: DeriveSettings;
  private readonly failing = new FailingHosts<Task>();
  private readonly asides: BlockedAsides;
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
  /** The error that stopped the run: nothing new starts, and it is thrown once nothing is under way. */
  private failure: { readonly err: unknown } | undefined;
  private wakeTimer: NodeJS.Timeout | undefined;
  private finish!: () => void;
  private fail!: (err: unknown) => void;

  constructor(
    ledger: DownloadLedger,
    publisher: Publisher,
    private readonly settings: SchedulerSettings,
    private readonly log: Logger,
    /** Breakers open when the run starts (an earlier run's, or another worker's), by host. */
    openBreakers: ReadonlyMap<string, number>,
    /** Hosts with gbifIDs parked behind them when the run starts (DownloadLedger.blockedHosts). */
    blockedHosts: readonly string[] = [],
  ) {
    this.windowSize = Math.max(MIN_WINDOW, settings.concurrency * WINDOW_PER_SLOT);
    this.claimBatch = Math.min(MAX_CLAIM_BATCH, this.windowSize / 2);
    this.hosts = new HostQueues<Task>(settings, openBreakers, (task) => this.router.promoteWaiter(task));
    this.claims = new Claims(ledger, this.runStart, settings.maxAttempts, settings.limit);
    if (ledger.hostBudgets) {
      this.sharedHosts = new SharedHosts<Task>(ledger.hostBudgets, this.hosts, settings.perHost, {
        breakerOpened: (host, until) => this.router.openedElsewhere(host, until),
        changed: () => this.pump(),
        failed: (err) => this.log.warn({ err: String(err) }, 'could not agree host budgets with the other workers; trying again'),
      });
    }
    this.derive = settings.derive ?? NO_DERIVE;
    this.window = new JobWindow(ledger, publisher, this.tally, log, settings.out, this.derive, { onError: (err) => this.fail(err), onPublished: () => this.pump() });
    this.asides = new BlockedAsides({
      breaker: (host, now) => this.host(host).breakerAt(now),
      claims: this.claims,
      window: this.window,
      // Shared: other workers park gbifIDs too. Looked at again no more often than a breaker could be probed.
      ...(ledger.hostBudgets && {
        others: {
          parked: () => ledger.blockedHosts(),
          everyMs: Math.max(1_000, Math.min(LOOK_AGAIN_MS, settings.breakerCooldownMs)),
          openHere: (host: string, until: number) => {
            const h = this.host(host);
            if (h.breaker === 'closed') h.restoreOpen(until);
          },
          failed: (err: unknown) => this.log.warn({ err: String(err) }, 'could not ask which hosts other workers parked gbifIDs behind; asking again'),
        },
      }),
    });
    this.asides.parkedBefore(blockedHosts);
    const parts = { ledger, publisher, settings, log, hosts: this.hosts, window: this.window, tally: this.tally, failing: this.failing, derive: this.derive, sharedHosts: this.sharedHosts };
    this.router = new TaskRouter(parts, {
      pump: () => this.pump(),
      record: (write) => this.record(write),
      putBack: (job) => {
        if (this.window.putBack(job)) this.claims.spill(job.gbifId, { suspect: true, putBack: true });
      },
      blockedAside: (host, gbifId) => this.asides.note(host, gbifId),
    });
    this.admission = { claims: this.claims, window: this.window, tally: this.tally, hosts: this.hosts, router: this.router, temps: settings.temps, hostBacklogLimit: Math.max(32, settings.perHost * 16) };
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
        this.router.elsewhere.stop();
        void this.sharedHosts?.stop();
        resolve(this.tally.close());
      };
      this.fail = (err) => {
        if (this.failure) return; // the first error is the one said
        this.failure = { err };
        clearInterval(holdTimer);
        this.router.elsewhere.stop();
        if (this.wakeTimer) clearTimeout(this.wakeTimer);
        void this.sharedHosts?.stop();
        // Requests in flight end now, not at their timeouts: nothing of theirs will be recorded.
        for (const job of this.window.unsettled()) job.cancel();
        this.window.close();
        const failed = Date.now();
        const settled = () => {
          if (this.underWay() && Date.now() - failed < SETTLE_MS) setTimeout(settled, 20);
          else reject(err);
        };
        settled();
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

  /** Whether anything of this run is still working: a request, a body being validated or stored, a publish, a ledger write. */
  private underWay(): boolean {
    return this.claiming || this.writes > 0 || this.window.publishing || this.inFlight > 0 || this.processing > 0;
  }

  private pump(): void {
    if (this.failure) return;
    try {
      if (this.wakeTimer) clearTimeout(this.wakeTimer);
      this.wakeTimer = undefined;
      const now = Date.now();
      // A failing host whose window has filled opens now, whether or not another failure has come.
      for (const host of this.failing.openElapsed(now)) this.router.breakerOpened(host);
      if (!this.stopping) {
        this.asides.takeUp(now);
        this.fillWindow();
      }
      while (this.inFlight < this.settings.concurrency && this.inFlight + this.processing < 2 * this.settings.concurrency) {
        const task = this.hosts.next(now);
        if (!task) break;
        this.start(task);
      }
      if (this.window.size === 0 && (this.claims.exhausted || this.stopping) && !this.underWay()) {
        // Not before the gbifIDs set aside behind a host that has come back since the last look.
        if (this.stopping || !this.asides.takeUp(now, true)) return this.finish();
        this.fillWindow();
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

  private host(name: string) {
    return this.hosts.host(name);
  }

  /** Claims the next batch while the window has room: one claim out at a time, and the pump goes on meanwhile. */
  private fillWindow(): void {
    if (this.claiming || this.claims.exhausted || this.claims.waiting) return;
    // What hosts suspected down hold is not counted (looked at only when the window is full): a probe and what each had tried, up to --per-host + 1.
    if (this.window.size >= this.windowSize && this.window.size >= this.windowSize + this.failing.probing(this.settings.perHost + 1)) return;
    this.claiming = true;
    this.claims.nextWithCopies(this.claimBatch, (host) => this.host(host).isOpen(Date.now())).then(
      (batch) => {
        this.claiming = false;
        // Stopping: what came back stays claimed until the run lets go of the ledger, which hands it back.
        if (this.stopping || batch.length === 0) return this.pump();
        let admitted = 0;
        for (const [claimed, copiesLookedUp] of batch) if (admit(this.admission, claimed, copiesLookedUp)) admitted++;
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
      fetchedBody = await fetchImage(task.image.url, task.temp, this.settings.fetch, task.job.signal);
      host.measuredImages++;
      host.measuredMs += performance.now() - sent;
    } catch (err) {
      this.inFlight--;
      host.inFlight--;
      return this.router.failedAttempt(task, err);
    }
    this.inFlight--;
    host.inFlight--;
    this.processing++;
    this.pump();
    try {
      await this.router.fetched(task, fetchedBody);
    } finally {
      this.processing--;
    }
  }
}
