/**
 * Hosts suspected down (nothing but failures, at least MIN_WINDOW_FAILURES of
 * them, their breaker window running) and the run's window of gbifIDs. An
 * export's dead hosts are counted in hundreds, and a host is first tried when
 * one of its gbifIDs enters the window: if the IDs of hosts already suspected
 * held their places for the whole breaker window, the next hosts would be
 * tried only as those opened, one window after another (160k gbifIDs on 2,000
 * refusing hosts took 4.9 windows to end; now 1.2 to 1.6, bench:dead-hosts).
 *
 * So a suspect host keeps one gbifID waiting on it (its probe, which goes on
 * failing or finds it back), and those it has already tried; the others are
 * put back, to be claimed again later in the run, and new ones of it are not
 * taken in. The window does not count what suspect hosts hold
 * (FailingHosts.probing). When its window ends it opens even with nothing of
 * it left in the window (`heldOutside`): on a shared ledger its IDs may have
 * gone to a worker that has only begun to suspect it.
 */
import type { Logger } from 'pino';
import type { HostState } from './host-state.js';
import type { Job } from './job.js';
import type { Task } from './task.js';

/** A host suspected down that already has a gbifID of the window waiting on it or asking it: one more is not taken in. */
export function probed(host: HostState<Task>): boolean {
  return host.suspect && host.backlog + host.inFlight > 0;
}

/**
 * Puts back the gbifIDs waiting on a suspect host but its probe. Only those
 * wholly at this host, never tried (taken up again they would have all their
 * --retries once more), with nothing in yet, leave. `promote`: a task's URL
 * may be awaited by other gbifIDs, one of which takes the fetch over.
 */
export function shedSuspect(host: HostState<Task>, log: Logger, promote: (task: Task) => void, putBack: (job: Job) => void): void {
  // One waiting besides any in flight: a request in flight may belong to a gbifID that leaves.
  let probes = 0;
  const shed = host.shed((t) => {
    if (t.job.settled) return false;
    const stays = probes === 0 || t.attempts > 0 || !t.job.untouched || t.job.claimed.images.some((img) => img.host !== host.name);
    if (stays) probes++;
    return stays;
  });
  let putBacks = 0;
  for (const t of shed) {
    promote(t);
    if (t.job.settled) continue;
    putBack(t.job);
    putBacks++;
  }
  if (putBacks === 0) return;
  host.heldOutside = true;
  log.info({ host: host.name, failures: host.consecutiveFailures, putBack: putBacks }, 'host suspected down: its gbifIDs but one wait outside the window until it opens or answers');
}
