/**
 * A URL already stored under another gbifID, in this run or an earlier one,
 * is hard-linked from that gbifID's file, not fetched again (one image URL
 * is shared by up to 72 gbifIDs in real exports). A IIIF identifier is linked
 * part by part: each of its images from its own file, with the outcome
 * recorded then. A file that is gone (moved or deleted by hand) is fetched,
 * and so is one whose size is no longer the one recorded (cut short by a copy
 * of the tree, a failing disk): linked, its damage would pass to every
 * gbifID that shares the URL, each recorded done with the sound file's hash.
 */
import type { FetchResult } from '../fetch/fetch-image.js';
import type { FetchedPart, StoredCopy } from '../ledger/ledger.js';
import { derivativeTemp, finalPath } from '../store/layout.js';
import { linkOrCopy, storedAsRecorded } from '../store/publisher.js';
import type { ReadDocument } from './iiif-documents.js';
import type { Task } from './task.js';

/** The stored identifier as a document read now: one image per stored part, asked by the request that answered it. */
export function storedDocument(copy: StoredCopy, parts: readonly FetchedPart[]): ReadDocument {
  return { document: { kind: 'manifest', images: parts.map((p) => ({ requests: [p.url] })) }, outcome: copy.image };
}

/** Links each task's file from the copy (tasks: the one image, or the identifier's parts in order). */
export function linkStored(
  out: string,
  copy: StoredCopy,
  tasks: readonly Task[],
  then: { readonly linked: (task: Task, outcome: FetchResult) => void; readonly missing: (task: Task) => void },
): void {
  tasks.forEach((task, i) => {
    const part = copy.parts?.[i];
    const source = finalPath(out, copy.gbifId, part ? part.fileIndex : copy.fileIndex);
    const outcome: FetchResult = part ? withoutPlace(part) : { ...copy.image };
    // The size is looked at before the link: a fetch writes its temporary in place, and would write through a link into the copy.
    storedAsRecorded(source, outcome.bytes)
      .then((intact) => intact && linkOrCopy(source, task.temp).then(() => true))
      .then(
        (linked) => (linked ? then.linked(task, outcome) : then.missing(task)),
        () => then.missing(task),
      );
  });
}

/**
 * A URL fetched for one gbifID, linked for another waiting on it: the image's
 * temporary and its derivatives'. A derivative that cannot be linked is made
 * again before the gbifID is published (see JobWindow).
 */
export async function linkUnit(from: string, to: string, widths: readonly number[]): Promise<void> {
  await linkOrCopy(from, to);
  await Promise.all(widths.map((w) => linkOrCopy(derivativeTemp(from, w), derivativeTemp(to, w)).catch(() => {})));
}

function withoutPlace({ partIndex: _p, fileIndex: _f, url: _u, ...outcome }: FetchedPart): FetchResult {
  return outcome;
}
