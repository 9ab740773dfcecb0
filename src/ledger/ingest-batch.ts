/** Ingest's side of the ledger: images a chunk of rows at a time, and what was added. Re-exported by ledger.ts. */
export interface IngestTally {
  /** gbifIDs new to the ledger. */
  readonly ids: number;
  /** Images new to the ledger (a gbifID's new URL). */
  readonly images: number;
  /** Rows whose (gbifID, URL) the ledger already had, from this file or before. */
  readonly duplicates: number;
  /** Done gbifIDs whose set of images changed (gained one; or, in a snapshot, lost one and kept others): pending again. Failed ones whose set shrank are counted too. */
  readonly reopened: number;
  /** gbifIDs it added (or reopened) that an exclusion list names: excluded, not pending. */
  readonly excluded: number;
  /** A snapshot's images that the ledger had and the file lacks, and the gbifIDs left with no image: removed. */
  readonly removedIds: number;
  readonly removedImages: number;
}

/**
 * Adds multimedia rows. Work becomes visible and durable only at commit(), in
 * batches the caller chooses; a crash loses at most the uncommitted batch, and
 * adding the same rows again is a no-op, so re-running an ingest completes it.
 */
/**
 * Images as ingest hands them over, a chunk of rows at a time, in columns.
 * Hosts and attributions come as numbers into lists that only grow from
 * batch to batch, and are new list objects when the numbering starts again:
 * so a writer resolves each number once, not once per row.
 */
export interface ImageBatch {
  readonly count: number;
  readonly gbifIds: Float64Array;
  /** urlHash(url) of each image. */
  readonly urlHashes: Float64Array;
  /**
   * Image i's normalised URL is text 2i and its creator text 2i + 1, as
   * UTF-8: text k is textBytes from textEnds[k - 1] (0 for the first) to
   * textEnds[k]. A writer that sends bytes (PostgreSQL's COPY) copies them
   * as they are; one that binds strings (SQLite) asks for text(k).
   */
  readonly textBytes: Buffer;
  readonly textEnds: Int32Array;
  text(k: number): string;
  readonly hosts: Int32Array;
  readonly hostNames: readonly string[];
  readonly attributions: Int32Array;
  /** Attributions packed by packAttribution (input/rows.ts). */
  readonly packedAttributions: readonly string[];
}

export interface FinishOptions {
  readonly applySnapshot?: boolean;
  readonly maxRemoval?: number;
}

export interface IngestWriter {
  /** Adds a batch's images; an image whose (gbifID, URL) the ledger already has counts as a duplicate. */
  addBatch(batch: ImageBatch): Promise<void>;
  commit(): Promise<void>;
  /** Drops everything added since the last commit. */
  rollback(): Promise<void>;
  /**
   * Commits, then builds whatever the ledger derives from the rows (indexes,
   * the ID list); lets go of the ledger's ingest lock. A snapshot's writer
   * removes what the snapshot did not list only when told the input is
   * complete (`applySnapshot`), and refuses (SnapshotRefusedError, nothing
   * removed) when that is more than `maxRemoval` (a share, 1 by default) of
   * the ledger's images.
   */
  finish(options?: FinishOptions): Promise<void>;
  /** Totals of what was committed so far. */
  tally(): IngestTally;
}
