/**
 * A task is one request to make for a gbifID: an image, or one image of an
 * expanded IIIF identifier, which carries the requests to try in turn (its
 * rungs: 1600 px, 1200, 800, then the resource's own URL).
 */
import type { ClaimedImage } from '../ledger/ledger.js';
import { tempPath } from '../store/layout.js';
import type { ReadDocument } from './iiif-documents.js';
import { unitKey, type Job } from './job.js';

export interface Task {
  readonly job: Job;
  /** For a IIIF part, the identifier's row with the URL and host of the request now tried. */
  image: ClaimedImage;
  readonly temp: string;
  attempts: number;
  throttles: number;
  /** Set for one image of an expanded IIIF identifier: its canvas and the requests to try, in order. */
  readonly part?: { readonly index: number; readonly requests: readonly string[]; rung: number };
}

export function imageTask(job: Job, image: ClaimedImage, temps: string): Task {
  const temp = tempPath(temps, job.gbifId, image.imageIndex);
  job.addTemp(unitKey(image.imageId), temp);
  return { job, image, temp, attempts: 0, throttles: 0 };
}

/** The identifier's task becomes one task per image its IIIF document describes. */
export function partTasks(task: Task, { document, outcome }: ReadDocument, temps: string): Task[] {
  const { job, image } = task;
  job.expand(image.imageId, outcome, document.images.length);
  return document.images.map((described, index) => {
    const url = described.requests[0] as string;
    const temp = tempPath(temps, job.gbifId, `${image.imageIndex}.${index}`);
    job.addTemp(unitKey(image.imageId, index), temp);
    // A part's URL is the document's, never leased: another worker fetching the identifier says nothing of it.
    return { job, image: { ...image, url, host: new URL(url).hostname, elsewhere: false }, temp, attempts: 0, throttles: 0, part: { index, requests: described.requests, rung: 0 } };
  });
}

/** Moves a IIIF part to its next request; false when none is left. */
export function nextRung(task: Task): boolean {
  const part = task.part;
  if (!part || part.rung + 1 >= part.requests.length) return false;
  part.rung++;
  const url = part.requests[part.rung] as string;
  task.image = { ...task.image, url, host: new URL(url).hostname };
  task.attempts = 0;
  return true;
}
