/**
 * What a gbifID's rechecked images said, gathered until each has answered
 * (an Entry), and the counts a recheck's summary gives. recheck.ts drives
 * the requests and the hosts; this file only keeps the tally.
 */
import type { FetchedImage, RecheckDue, RecheckImage, RecheckOutcome } from '../ledger/ledger.js';
import { derivativePath, derivativeTemp, finalPath } from '../store/layout.js';
import type { Checked } from './check-image.js';

export interface RecheckSummary {
  /** Images asked about. */
  readonly checked: number;
  /** Confirmed by a 304 (no body sent), or by a body with the same bytes. */
  readonly notModified: number;
  readonly sameBytes: number;
  /** New versions, published in place of the old files. */
  readonly changed: number;
  /** 404 or 410: marked gone at the source, files kept until prune. */
  readonly gone: number;
  /** Stored files that were gone or of another size, put back from the same version at the host. */
  readonly restored: number;
  /** No verdict (timeouts, 5xx, a host whose breaker opened): asked again at a later recheck, by code. */
  readonly later: Readonly<Record<string, number>>;
  /** Body bytes received. */
  readonly bytes: number;
  readonly interrupted: boolean;
  readonly elapsedMs: number;
}

export type Counts = { -readonly [K in keyof RecheckSummary]: RecheckSummary[K] } & { later: Record<string, number> };

export function newCounts(): Counts {
  return { checked: 0, notModified: 0, sameBytes: 0, changed: 0, gone: 0, restored: 0, later: {}, bytes: 0, interrupted: false, elapsedMs: 0 };
}

export interface Entry {
  readonly due: RecheckDue;
  /** Images still to answer. */
  waiting: number;
  readonly outcome: { confirmed: RecheckOutcome['confirmed'][number][]; changed: FetchedImage[]; gone: number[] };
  /** Temporaries of new versions, by image id. */
  readonly temps: Map<number, string>;
  /** Temporaries of stored files to put back as they were, by NN. */
  readonly restored: Map<number, string>;
}

export function newEntry(due: RecheckDue): Entry {
  return { due, waiting: due.images.length, outcome: { confirmed: [], changed: [], gone: [] }, temps: new Map(), restored: new Map() };
}

/** The ledger's record of an image the host confirmed, with the validators it sent (if any). */
function confirmation(image: RecheckImage, checked: { readonly etag?: string; readonly lastModified?: string }): RecheckOutcome['confirmed'][number] {
  return { imageId: image.imageId, ...(checked.etag ? { etag: checked.etag } : {}), ...(checked.lastModified ? { lastModified: checked.lastModified } : {}) };
}

/** Counts one image's answer and keeps what the ledger and the publish need of it. */
export function noteAnswer(entry: Entry, image: RecheckImage, temp: string, checked: Checked, counts: Counts): void {
  counts.bytes += 'bytes' in checked ? checked.bytes : 0;
  counts.checked++;
  switch (checked.kind) {
    case 'confirmed':
      if (checked.how === 'not_modified') counts.notModified++;
      else counts.sameBytes++;
      entry.outcome.confirmed.push(confirmation(image, checked));
      return;
    case 'restored':
      // Confirmed in the ledger as it is; its file is put back.
      counts.restored++;
      entry.outcome.confirmed.push(confirmation(image, checked));
      entry.restored.set(image.fileIndex, temp);
      return;
    case 'changed':
      counts.changed++;
      entry.outcome.changed.push(checked.image);
      entry.temps.set(image.imageId, temp);
      return;
    case 'gone':
      counts.gone++;
      entry.outcome.gone.push(image.imageId);
      return;
    case 'later':
      counts.later[checked.code] = (counts.later[checked.code] ?? 0) + 1;
  }
}

/** The files a gbifID's answers put in place: each new version with its derivatives, and each stored file put back. */
export function filesToPut(entry: Entry, out: string): { temp: string; final: string }[] {
  const gbifId = entry.due.gbifId;
  const files = entry.outcome.changed.flatMap((image) => {
    const temp = entry.temps.get(image.imageId) as string;
    return [
      { temp, final: finalPath(out, gbifId, image.fileIndex) },
      ...entry.due.widths.map((w) => ({ temp: derivativeTemp(temp, w), final: derivativePath(out, w, gbifId, image.fileIndex) })),
    ];
  });
  // A stored file put back: its derivatives were made from the same bytes and stay.
  for (const [fileIndex, temp] of entry.restored) files.push({ temp, final: finalPath(out, gbifId, fileIndex) });
  return files;
}
