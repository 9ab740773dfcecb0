/**
 * What a claimed gbifID becomes when it reaches the run: a job in the window
 * with a task per image (fetched, linked from a stored copy, or expanded from
 * a IIIF document this run has read), a job set aside at once behind a
 * breaker that is open, or nothing yet: handed back to the claims for later
 * in the run, so that one slow or dead host does not fill the window.
 */
import type { ClaimedId } from '../ledger/ledger.js';
import type { Claims } from './claims.js';
import type { HostQueues } from './host-queues.js';
import { Job } from './job.js';
import type { JobWindow } from './job-window.js';
import { probed } from './suspect-hosts.js';
import { imageTask, type Task } from './task.js';
import type { RunTally } from './tally.js';
import type { TaskRouter } from './task-router.js';

export interface AdmissionParts {
  readonly claims: Claims;
  readonly window: JobWindow;
  readonly tally: RunTally;
  readonly hosts: HostQueues<Task>;
  readonly router: TaskRouter;
  /** The run's folder of temporaries. */
  readonly temps: string;
  /** Requests queued at one host past which its gbifIDs wait outside the window. */
  readonly hostBacklogLimit: number;
}

/** Admits a claimed gbifID into the window; false when it stays outside (already there, no images, or spilled for later). */
export function admit(parts: AdmissionParts, claimed: ClaimedId, copiesLookedUp: boolean): boolean {
  const { claims, window, tally, hosts, router } = parts;
  const again = claims.wasTakenUp(claimed.gbifId);
  if (again) {
    // Set aside, and claimed again now its host is back (or as its probe). The ledgers give back only set-aside IDs; never one the run holds.
    if (window.has(claimed.gbifId)) return false;
    tally.takenUp(claimed.images.map((img) => img.host), claimed.dueAt !== undefined);
  }
  if (claimed.images.length === 0) return false;
  const now = Date.now();
  const blocked = claimed.images.find((img) => hosts.host(img.host).isOpen(now));
  // Claimed while a host of it was open, which has closed since (or half-opened for a probe): set aside until it comes back with its stored copies looked up.
  const unlinked = !blocked && !copiesLookedUp;
  if (unlinked || claimed.images.some((img) => hosts.host(img.host).backlog >= parts.hostBacklogLimit)) {
    // One slow host must not fill the window: set the ID aside for later in this run.
    claims.spill(claimed.gbifId);
    return false;
  }
  const suspect = claimed.images.find((img) => probed(hosts.host(img.host)));
  if (suspect) {
    // Nor a host suspected down: it has its probe; the ID comes back once the host opens or answers.
    hosts.host(suspect.host).heldOutside = true;
    claims.spill(claimed.gbifId, { suspect: true });
    return false;
  }
  claims.admitted(claimed.gbifId, again);
  const job = new Job(claimed);
  window.add(job);
  if (blocked) {
    router.setAside(job, undefined, blocked.host);
    return true;
  }
  for (const image of claimed.images) {
    const task = imageTask(job, image, parts.temps);
    const read = router.iiif.get(image.url);
    if (read) router.expand(task, read);
    else router.fetchOrLink(task);
  }
  return true;
}
