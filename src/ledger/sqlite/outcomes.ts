/**
 * Recording a run's outcomes in the SQLite ledger: gbifIDs done (with their
 * images and IIIF parts) or failed, and images stored ahead of their gbifID,
 * each with every counter `status` reads (totals, each host's, error counts)
 * moved in the caller's transaction. The shared ledger's counterpart is
 * postgres/outcomes.ts.
 */
import type { DoneId, FailedId, FetchedImage } from '../ledger.js';
import { TOTAL_NAME } from '../rows.js';
import type { SqliteDerivatives } from './derivatives.js';
import type { DownloadStatements } from './download-statements.js';
import { STATE } from './schema.js';

interface ImageState {
  readonly state: number;
  readonly code: string | null;
  readonly hostId: number;
}

export class SqliteOutcomes {
  constructor(
    private readonly stmt: DownloadStatements,
    private readonly derivatives: SqliteDerivatives,
  ) {}

  /**
   * In a transaction: each gbifID done, its images with their outcomes, its
   * derivative widths, its intent cleared. A gbifID that has an image the run
   * did not have when it claimed it (an ingest beside the run added one) is
   * not done: its images are recorded, and it stays pending, to be completed
   * as a reopened one is. Returns those gbifIDs.
   */
  done(done: readonly DoneId[], now: number): number[] {
    const unfinished: number[] = [];
    for (const { gbifId, images, widths } of done) {
      const before = this.states(gbifId);
      this.images(images, before, now);
      this.derivatives.reset(gbifId, widths ?? []);
      this.stmt.clearIntent.run(gbifId);
      if (lacksAnImage(before, images)) {
        this.moveId(gbifId, STATE.pending);
        this.stmt.idPending.run(now, gbifId);
        unfinished.push(gbifId);
        continue;
      }
      this.moveId(gbifId, STATE.done);
      this.stmt.idDone.run(now, gbifId);
    }
    return unfinished;
  }

  /** In a transaction: each gbifID failed, due again at `retryAt`, each failed image counted under its host and code. */
  failed(failed: readonly FailedId[], now: number): void {
    for (const { gbifId, failures, retryAt } of failed) {
      // Excluded while this run held it (herbdl exclude beside a run): it stays excluded, not failed.
      if (this.stmt.idState.get(gbifId) === STATE.excluded) continue;
      this.moveId(gbifId, STATE.failed);
      this.stmt.idFailed.run(retryAt, now, gbifId);
      const before = this.states(gbifId);
      for (const f of failures) {
        const old = before.get(f.imageId);
        if (old) this.moveImage(old, STATE.failed);
        this.stmt.imageFailed.run(f.code, f.httpStatus ?? null, now, retryAt, f.imageId);
        if (old) this.stmt.errorCount.run(f.code, old.hostId, 1);
      }
    }
  }

  /** Marks images done with their outcomes (and IIIF parts), moving their hosts' counters; `before`: the gbifID's images' states. */
  images(images: readonly FetchedImage[], before: Map<number, ImageState>, now: number): void {
    for (const image of images) {
      const old = before.get(image.imageId);
      if (old) this.moveImage(old, STATE.done);
      this.stmt.imageDone.run(
        image.httpStatus,
        image.finalUrl,
        image.contentType,
        image.bytes,
        image.sha256,
        image.width ?? null,
        image.height ?? null,
        image.receivedFormat ?? null,
        image.fileIndex,
        now,
        image.etag ?? null,
        image.lastModified ?? null,
        now,
        now,
        image.imageId,
      );
      this.stmt.clearParts.run(image.imageId);
      for (const p of image.parts ?? []) {
        this.stmt.part.run(
          image.imageId,
          p.partIndex,
          p.fileIndex,
          p.url,
          p.httpStatus,
          p.finalUrl,
          p.contentType,
          p.bytes,
          p.width ?? null,
          p.height ?? null,
          p.sha256,
          p.receivedFormat ?? null,
        );
      }
    }
  }

  states(gbifId: number): Map<number, ImageState> {
    const rows = this.stmt.imageStates.all(gbifId) as [number, number, string | null, number][];
    return new Map(rows.map(([id, state, code, hostId]) => [id, { state, code, hostId }]));
  }

  /**
   * Moves one image between states in its host's counters, and out of its old
   * error count: a failed image that fails again (its retry) is counted anew
   * by the caller, under its new code. (Until 2026-12-06 it was counted again
   * under the old: each retry-failed run added every failure it retried.)
   */
  private moveImage(old: ImageState, to: number): void {
    if (old.state === STATE.failed && old.code) this.stmt.errorCount.run(old.code, old.hostId, -1);
    if (old.state === to) return;
    // An excluded image has no host counter of its own (it is the images the others do not count).
    const delta = [0, 0, 0, 0];
    delta[old.state] = -1;
    delta[to] = 1;
    this.stmt.hostMove.run(delta[0], delta[1], delta[2], old.hostId);
  }

  private moveId(gbifId: number, to: number): void {
    const from = this.stmt.idState.get(gbifId) as number | undefined;
    if (from === undefined || from === to) return;
    this.stmt.total.run(-1, TOTAL_NAME[from] as string);
    this.stmt.total.run(1, TOTAL_NAME[to] as string);
  }
}

/** Whether the gbifID has an image, pending or failed, that is not among those just done. */
function lacksAnImage(before: Map<number, ImageState>, done: readonly FetchedImage[]): boolean {
  if (before.size <= done.length) return false;
  const ids = new Set(done.map((i) => i.imageId));
  for (const [imageId, { state }] of before) if (!ids.has(imageId) && (state === STATE.pending || state === STATE.failed)) return true;
  return false;
}
