/**
 * One claimed gbifID in the window: the images it still waits for, their
 * temporaries, and, once all are in, what to publish. An identifier that
 * turns out to be a IIIF document expands in place into its images, so a
 * gbifID completes only when every canvas of every manifest it has is in.
 *
 * NN: files are numbered over the gbifID's images in imageIndex order, with
 * an expanded identifier's images (in canvas order) in its place; an image's
 * NN is never below its imageIndex. With no IIIF identifier (almost every
 * gbifID) NN is the imageIndex, so an image keeps its NN for life: one a
 * newer export removed leaves a gap, and the images after it keep their names.
 */
import type { ClaimedId, FetchedImage, FetchedPart, ImageOutcome } from '../ledger/ledger.js';
import type { FetchResult } from '../fetch/fetch-image.js';
import { derivativePath, derivativeTemp, finalPath } from '../store/layout.js';
import type { PublishItem } from '../store/publisher.js';

/** A unit of work: an image, or one part of an expanded identifier. */
export function unitKey(imageId: number, partIndex?: number): string {
  return partIndex === undefined ? String(imageId) : `${imageId}:${partIndex}`;
}

/** The derivatives a run makes (`widths`), and every width the ledger has recorded (`known`), whose files a shrunken set leaves stale. */
export interface DeriveLayout {
  readonly widths: readonly number[];
  readonly known: readonly number[];
}

/** What a run makes derivatives with: `make` writes `<path>.w<width>` for each width, from the image at `path`. */
export interface DeriveSettings extends DeriveLayout {
  make(path: string, widths: readonly number[]): Promise<void>;
}

export const NO_DERIVE: DeriveSettings = { widths: [], known: [], make: async () => {} };

interface Expansion {
  /** What fetching the identifier itself gave (the manifest or info.json). */
  readonly outcome: ImageOutcome;
  readonly parts: number;
}

export class Job {
  /** Made when a request of it starts: most gbifIDs set aside never make one, and aborting one builds an error with its stack. */
  private controller: AbortController | undefined;
  settled = false;
  private readonly temps = new Map<string, string>();
  /** Temporaries their validation wrote and fsynced (validate-image.ts): published without another fsync. */
  private readonly syncedTemps = new Set<string>();
  private readonly results = new Map<string, FetchResult & { readonly requested: string }>();
  private readonly expansions = new Map<number, Expansion>();
  /**
   * Where each temporary goes in the tree, filled once publishItem is made
   * (the gbifID is complete): after the publisher's rename, the file is
   * there. A map of its own, so what remembers it does not keep the job.
   */
  readonly finals = new Map<string, string>();
  private expected: number;

  constructor(readonly claimed: ClaimedId) {
    this.expected = claimed.images.length;
  }

  get gbifId(): number {
    return this.claimed.gbifId;
  }

  /** What its requests listen to: aborted once the gbifID ends (done, failed, set aside, put back) or the run fails. */
  get signal(): AbortSignal {
    this.controller ??= new AbortController();
    return this.controller.signal;
  }

  /** Ends its requests under way, if any started. */
  cancel(): void {
    this.controller?.abort();
  }

  addTemp(key: string, temp: string): void {
    this.temps.set(key, temp);
  }

  markSynced(temp: string): void {
    this.syncedTemps.add(temp);
  }

  allTemps(): string[] {
    return [...this.temps.values()];
  }

  /** The identifier `imageId` is a IIIF document with `parts` images; its own temporary is gone. */
  expand(imageId: number, outcome: ImageOutcome, parts: number): void {
    this.expansions.set(imageId, { outcome, parts });
    this.temps.delete(unitKey(imageId));
    this.expected += parts - 1;
  }

  /** Nothing of it is in yet: no image, no IIIF document read (leaving the window loses no work). */
  get untouched(): boolean {
    return this.results.size === 0 && this.expansions.size === 0;
  }

  /** Records a unit's result; true when that was the gbifID's last one. */
  done(key: string, requested: string, result: FetchResult): boolean {
    this.results.set(key, { ...result, requested });
    return this.results.size >= this.expected;
  }

  /**
   * Files in NN order and what the ledger records of each image, each
   * followed by its derivatives (`derive.widths`); `stored`, the NNs the
   * gbifID has in the tree from an earlier set, gives the stale files the
   * new set does not replace: originals past its last NN, and derivatives
   * of every width the ledger has ever had (`derive.known`) not made now.
   */
  publishItem(out: string, stored: readonly number[] = [], derive: DeriveLayout = NO_DERIVE): PublishItem {
    const files: { temp: string; final: string; synced?: true }[] = [];
    const images: FetchedImage[] = [];
    let nn = 0;
    const take = (key: string) => {
      const result = this.results.get(key);
      const temp = this.temps.get(key);
      if (!result || temp === undefined) throw new Error(`gbifID ${this.gbifId}: no result for ${key}`);
      files.push({ temp, final: finalPath(out, this.gbifId, nn), ...(this.syncedTemps.has(temp) ? { synced: true as const } : {}) });
      for (const w of derive.widths) files.push({ temp: derivativeTemp(temp, w), final: derivativePath(out, w, this.gbifId, nn) });
      return { result, fileIndex: nn++ };
    };
    for (const image of this.claimed.images) {
      nn = Math.max(nn, image.imageIndex);
      const expansion = this.expansions.get(image.imageId);
      if (!expansion) {
        const { result, fileIndex } = take(unitKey(image.imageId));
        const { requested: _requested, ...outcome } = result;
        images.push({ imageId: image.imageId, fileIndex, ...outcome });
        continue;
      }
      const parts: FetchedPart[] = [];
      for (let p = 0; p < expansion.parts; p++) {
        const { result, fileIndex } = take(unitKey(image.imageId, p));
        const { requested, ...outcome } = result;
        parts.push({ partIndex: p, fileIndex, url: requested, ...outcome });
      }
      images.push({ imageId: image.imageId, fileIndex: parts[0]?.fileIndex ?? nn, ...expansion.outcome, parts });
    }
    for (const f of files) this.finals.set(f.temp, f.final);
    const kept = new Set(files.map((f) => f.final));
    const stale = stored.map((n) => finalPath(out, this.gbifId, n)).filter((path) => !kept.has(path));
    for (const w of stored.length > 0 ? derive.known : []) {
      for (const n of stored) {
        const path = derivativePath(out, w, this.gbifId, n);
        if (!kept.has(path)) stale.push(path);
      }
    }
    const item: PublishItem = { gbifId: this.gbifId, files, images, widths: derive.widths };
    return stale.length > 0 ? { ...item, stale } : item;
  }
}
