/**
 * `herbdl recheck`: asks the hosts again for the stored images that are due
 * (freshness.ts), through per-host queues with `run`'s caps, 429 cooldowns
 * and breakers: a pull-driven pump starts whatever host can take a request
 * now, up to --concurrency. Due gbifIDs are claimed a batch at a time into a
 * bounded window; when all of a gbifID's due images have answered, what
 * they said is recorded (group commits), and a gbifID with new versions has
 * them published in place of the old files, all at once (Publisher.replace:
 * the old set or the new one, whatever is killed when); so is a stored file
 * found gone or cut short, put back from the same version. On a ledger shared
 * by workers it takes its request slots at each host from the same shared
 * budget as the runs (SharedHosts), so a recheck beside them, or on many
 * machines, adds nothing to what a host gets at once.
 */
import { FetchError } from '../errors.js';
import type { FetchSettings } from '../fetch/fetch-image.js';
import type { DownloadLedger, RecheckDue, RecheckImage, RecheckOutcome, Tier } from '../ledger/ledger.js';
import { HostQueues } from '../scheduler/host-queues.js';
import type { HostSettings, HostState } from '../scheduler/host-state.js';
import { SharedHosts } from '../scheduler/shared-hosts.js';
import { finalPath, tempPath } from '../store/layout.js';
import type { Publisher } from '../store/publisher.js';
import type { Validator } from '../validate/validator-pool.js';
import { filesToPut, newCounts, newEntry, noteAnswer, type Entry, type RecheckSummary } from './answers.js';
import { checkImage, tempsOf, type Checked } from './check-image.js';

export type { RecheckSummary } from './answers.js';

export interface RecheckSettings extends HostSettings {
  readonly out: string;
  readonly temps: string;
  readonly concurrency: number;
  readonly fetch: FetchSettings;
  readonly tiers: readonly Tier[] | 'all';
  /** Requests this recheck may make at most (0: no cap). */
  readonly budget: number;
  readonly validator: Validator;
  readonly publisher: Publisher;
  /** Breakers open when it starts (a run's), by host. */
  readonly openBreakers: ReadonlyMap<string, number>;
  readonly signal?: AbortSignal;
  readonly onProgress?: (summary: RecheckSummary) => void;
}

interface RecheckTask {
  readonly job: { readonly settled: boolean };
  readonly image: { readonly host: string };
  readonly entry: Entry;
  readonly target: RecheckImage;
  readonly temp: string;
  throttles: number;
}

const CLAIM_BATCH = 128;
const MAX_THROTTLES = 20;
const RECORD_BATCH = 256;

export async function recheck(ledger: DownloadLedger, settings: RecheckSettings): Promise<RecheckSummary> {
  const started = performance.now();
  const now = Date.now();
  const counts = newCounts();
  const snapshot = (): RecheckSummary => ({ ...counts, later: { ...counts.later }, elapsedMs: Math.round(performance.now() - started) });
  const hosts = new HostQueues<RecheckTask>(settings, settings.openBreakers, () => {});
  // On a shared ledger a host is asked only as many requests at once as this recheck owns of its --per-host slots.
  const shared = ledger.hostBudgets
    ? new SharedHosts<RecheckTask>(ledger.hostBudgets, hosts, settings.perHost, {
        breakerOpened: (host, until) => {
          host.restoreOpen(until);
          leaveForLater(host);
        },
        changed: () => pump(),
        // Tried again at the next exchange, about a second later, as in a run (which only logs it); meanwhile it keeps to the slots it has.
        failed: () => {},
      })
    : undefined;
  const window = settings.concurrency * 8;
  let queued = 0;
  let inFlight = 0;
  let after = -1;
  let exhausted = false;
  let claiming = false;
  let busy = 0;
  let toRecord: RecheckOutcome[] = [];
  let wake: NodeJS.Timeout | undefined;
  let failure: unknown;
  let finish!: () => void;
  const done = new Promise<void>((resolve) => (finish = resolve));

  /** Writes gathered outcomes; a gbifID with new versions first has them put in place. */
  const settle = (entry: Entry): void => {
    const outcome: RecheckOutcome = { gbifId: entry.due.gbifId, ...entry.outcome };
    if (entry.outcome.changed.length === 0 && entry.restored.size === 0) {
      toRecord.push(outcome);
      if (toRecord.length >= RECORD_BATCH) flush();
      return;
    }
    const files = filesToPut(entry, settings.out);
    track(settings.publisher.replace([{ gbifId: entry.due.gbifId, files }], () => ledger.recordRechecked([outcome])));
  };

  const flush = (): void => {
    if (toRecord.length === 0) return;
    const batch = toRecord;
    toRecord = [];
    track(ledger.recordRechecked(batch));
  };

  /** Work the recheck waits for before it ends (a publish, a ledger write, a claim). */
  const track = (work: Promise<unknown>): void => {
    busy++;
    work.then(
      () => {
        busy--;
        pump();
      },
      (err: unknown) => {
        failure ??= err;
        busy--;
        pump();
      },
    );
  };

  const answered = (task: RecheckTask, checked: Checked): void => {
    const host = hosts.host(task.image.host);
    const entry = task.entry;
    if (checked.kind === 'later') {
      if (retried(task, checked.error)) return;
      void settings.publisher.discard(tempsOf(task.temp, entry.due.widths));
    } else if (checked.kind === 'gone') host.answered();
    else host.succeeded();
    noteAnswer(entry, task.target, task.temp, checked, counts);
    queued--;
    if (--entry.waiting === 0) settle(entry);
  };

  /** A host whose breaker just opened: what waits there is left for a later recheck. */
  const leaveForLater = (host: HostState<RecheckTask>): void => {
    for (const waiting of host.drain()) answered(waiting, { kind: 'later', code: 'breaker_open', bytes: 0 });
  };

  /** This recheck opened a host's breaker: kept in the ledger as a run's is, so runs (and, on a shared ledger, every worker) hold off the host too. */
  const opened = (host: HostState<RecheckTask>): void => {
    track(ledger.recordBreaker(host.name, host.openUntil));
    leaveForLater(host);
  };

  /**
   * A 429 or 503 with Retry-After waits out the host's cooldown and is asked
   * again, unless the host asked for longer than --breaker-cooldown: then its
   * breaker opens and its images wait for a later recheck, as in a run. A
   * failure that may mean a host is down counts toward its breaker.
   */
  const retried = (task: RecheckTask, error: FetchError | undefined): boolean => {
    const host = hosts.host(task.image.host);
    const at = Date.now();
    if (error?.kind === 'throttled' && ++task.throttles <= MAX_THROTTLES) {
      const retryAt = (error as FetchError & { retryAt?: number }).retryAt;
      host.coolDown(at, retryAt);
      shared?.noteCooldown(host.name, host.cooldownUntil);
      if (retryAt !== undefined && host.openForLongCooldown(at)) opened(host);
      if (host.isOpen(at)) return false;
      hosts.enqueue(task, host.cooldownUntil);
      return true;
    }
    if (error && error.kind !== 'permanent') {
      if (error.code === 'timeout' || error.code === 'connect_timeout' || error.kind === 'host_down') host.coolDown(at);
      if (host.failed(at) === 'opened') opened(host);
    } else if (error) host.answered();
    return false;
  };

  const start = (task: RecheckTask): void => {
    inFlight++;
    const host = hosts.host(task.image.host);
    host.inFlight++;
    checkImage(task.target, task.temp, finalPath(settings.out, task.entry.due.gbifId, task.target.fileIndex), { fetch: settings.fetch, validator: settings.validator, widths: task.entry.due.widths, signal: settings.signal })
      .then(
        (checked) => {
          host.inFlight--;
          inFlight--;
          answered(task, checked);
        },
        (err: unknown) => {
          host.inFlight--;
          inFlight--;
          failure ??= err;
        },
      )
      .finally(() => {
        settings.onProgress?.(snapshot());
        pump();
      });
  };

  const admit = (due: RecheckDue): void => {
    const images = settings.budget > 0 ? due.images.slice(0, Math.max(0, settings.budget - counts.checked - queued)) : due.images;
    if (images.length === 0) return;
    const entry = newEntry({ ...due, images });
    for (const target of images) {
      const host = hosts.host(target.host);
      const task: RecheckTask = { job: { settled: false }, image: { host: target.host }, entry, target, temp: tempPath(settings.temps, due.gbifId, target.fileIndex), throttles: 0 };
      queued++;
      if (host.isOpen(Date.now())) answered(task, { kind: 'later', code: 'breaker_open', bytes: 0 });
      else hosts.enqueue(task);
    }
  };

  const claim = (): void => {
    if (claiming || exhausted || queued >= window || failure || settings.signal?.aborted) return;
    if (settings.budget > 0 && counts.checked + queued >= settings.budget) {
      exhausted = true;
      return;
    }
    claiming = true;
    ledger.claimRecheck(settings.tiers, now, after, CLAIM_BATCH).then(
      ({ last, due }) => {
        claiming = false;
        if (last === undefined) exhausted = true;
        else after = last;
        for (const d of due) admit(d);
        pump();
      },
      (err: unknown) => {
        claiming = false;
        failure ??= err;
        pump();
      },
    );
  };

  const pump = (): void => {
    if (wake) clearTimeout(wake);
    wake = undefined;
    const stopping = failure !== undefined || (settings.signal?.aborted ?? false);
    if (!stopping) claim();
    const at = Date.now();
    while (!stopping && inFlight < settings.concurrency) {
      const task = hosts.next(at);
      if (!task) break;
      start(task);
    }
    if (inFlight === 0 && !claiming && (queued === 0 || stopping) && (exhausted || stopping)) {
      flush();
      if (busy === 0) return finish();
    }
    const next = hosts.nextWake(at);
    if (next !== Infinity && !stopping) wake = setTimeout(pump, Math.max(1, next - Date.now()));
  };

  shared?.start();
  pump();
  try {
    await done;
  } finally {
    await shared?.stop();
  }
  if (failure) throw failure;
  counts.interrupted = settings.signal?.aborted ?? false;
  return snapshot();
}
