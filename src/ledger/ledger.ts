/**
 * The ledger: what herbdl knows about every gbifID and image, in the domain's
 * words. Everything outside src/ledger/ talks to this interface only, so a
 * ledger shared by many machines (PostgreSQL) can be a second implementation
 * without touching ingest, the scheduler or the CLI.
 */
export type ItemState = 'pending' | 'done' | 'failed';

export interface StateCounts {
  readonly total: number;
  readonly pending: number;
  readonly done: number;
  readonly failed: number;
}

export interface HostCounts {
  readonly host: string;
  readonly images: number;
  readonly pending: number;
  readonly done: number;
  readonly failed: number;
  /** Epoch ms until which the host's circuit breaker is open; its pending images wait on it. */
  readonly breakerOpenUntil?: number;
  /** With an open breaker: the pending gbifIDs the last run found waiting on it. */
  readonly blockedIds?: number;
}

export interface HostErrorCount {
  readonly host: string;
  readonly code: string;
  readonly images: number;
}

export interface LedgerStatus {
  /** False while a bulk ingest is running or was interrupted: gbifID counts are then incomplete. */
  readonly complete: boolean;
  readonly ids: StateCounts;
  readonly images: StateCounts;
  /** Busiest hosts first (by images). */
  readonly hosts: readonly HostCounts[];
  /** Failed images by error code. */
  readonly errors: Readonly<Record<string, number>>;
  /** Failed images by host and code, most first. */
  readonly errorsByHost: readonly HostErrorCount[];
  /** Hosts whose breaker is open now, with the pending images blocked on them. */
  readonly blockedHosts: readonly HostCounts[];
}

/** One image of a claimed gbifID, as the downloader needs it. */
export interface ClaimedImage {
  readonly imageId: number;
  readonly imageIndex: number;
  readonly url: string;
  readonly host: string;
}

export interface RetryCursor {
  readonly dueAt: number;
  readonly gbifId: number;
}

export interface ClaimedId {
  readonly gbifId: number;
  /** When it was due (retryable claims only), for the next cursor. */
  readonly dueAt?: number;
  /** Runs that have failed it so far. */
  readonly attempts: number;
  readonly images: readonly ClaimedImage[];
  /** True when some of its images were stored before (a newer export reopened it): its old files may outnumber the new. */
  readonly reopened?: boolean;
}

/** What a fetched and stored image was. */
export interface ImageOutcome {
  readonly httpStatus: number;
  readonly finalUrl: string;
  readonly contentType: string;
  readonly bytes: number;
  readonly sha256: string;
  readonly width?: number;
  readonly height?: number;
  /** jpeg, png, tiff, ... as received, before conversion. */
  readonly receivedFormat?: string;
}

/** One image a IIIF identifier expanded into (a manifest's canvas, or an image service's one image). */
export interface FetchedPart extends ImageOutcome {
  /** Canvas order within the identifier, from 0. */
  readonly partIndex: number;
  /** NN of its file. */
  readonly fileIndex: number;
  /** The request that answered (an Image API size, or the resource's own URL). */
  readonly url: string;
}

export interface FetchedImage extends ImageOutcome {
  readonly imageId: number;
  /**
   * NN of its file (of its first part, for a IIIF identifier). Equal to the
   * imageIndex unless an earlier image of the gbifID expanded into several.
   */
  readonly fileIndex: number;
  /** Set when the identifier was a IIIF document: the images it expanded into, in canvas order. */
  readonly parts?: readonly FetchedPart[];
}

export interface FailedImage {
  readonly imageId: number;
  readonly host: string;
  readonly code: string;
  readonly httpStatus: number | undefined;
}

export interface StoredCopy {
  readonly gbifId: number;
  readonly fileIndex: number;
  readonly image: ImageOutcome;
  readonly parts?: readonly FetchedPart[];
}

/** A gbifID whose files are being renamed into place: what to undo if we die half-way. */
export interface PublishIntent {
  readonly gbifId: number;
  readonly paths: readonly string[];
}

/** The downloader's side of the ledger. */
export interface DownloadLedger {
  /** Pending gbifIDs above `afterGbifId`, in key order. */
  claimPending(afterGbifId: number, limit: number): ClaimedId[];
  /**
   * Failed gbifIDs whose failures were all transient, due by `dueBy`, tried
   * fewer than maxAttempts times, in due order after `cursor` (keyset paging,
   * so an ID released within a run is not claimed twice).
   */
  claimRetryable(cursor: RetryCursor, dueBy: number, maxAttempts: number, limit: number): ClaimedId[];
  /**
   * Notes pending gbifIDs to claim again later in this run (their host's
   * queue was full). Kept by the ledger, not in memory: behind one slow host
   * that holds millions of gbifIDs the list can be most of the export.
   * Forgotten when the run ends; the IDs stay pending either way.
   */
  deferIds(gbifIds: readonly number[]): void;
  /** Up to `limit` deferred gbifIDs, oldest first, with their images; they are deferred no more. */
  claimDeferred(limit: number): ClaimedId[];
  /**
   * A stored copy of this URL under another gbifID than `forGbifId`, if any:
   * lets a shared URL be fetched once across runs. (A gbifID's own earlier
   * copy is never used: it is being done again because a newer export
   * changed it.) For a IIIF identifier, `parts` are the images it expanded
   * into, each with the NN of its file there.
   */
  storedCopy(url: string, forGbifId: number): StoredCopy | undefined;
  /** The NNs of the files a gbifID has in the tree now (its done images and IIIF parts). */
  storedFileIndexes(gbifId: number): number[];
  /** Durably notes the files about to be renamed into place, or removed (before any rename). */
  beginPublish(intents: readonly PublishIntent[]): void;
  /** Marks gbifIDs done with every image, and clears their intents, in one transaction. */
  recordDone(done: readonly { gbifId: number; images: readonly FetchedImage[] }[]): void;
  /** Intents left by a run that died between rename and commit. */
  openIntents(): PublishIntent[];
  clearIntents(gbifIds: readonly number[]): void;
  /** Marks a gbifID failed. retryAt (epoch ms) when every failure was transient, else null. */
  recordFailed(gbifId: number, failures: readonly FailedImage[], retryAt: number | null): void;
  /** Hosts whose breaker an earlier run opened, with when it may be probed (epoch ms). */
  openBreakers(): Map<string, number>;
  /** Persists a host's breaker so `status` can show what is blocked and later runs respect it. */
  recordBreaker(host: string, openUntil: number | null): void;
  /** Notes, for hosts whose breaker is open, how many pending gbifIDs a run found waiting on each. */
  recordBlocked(blocked: ReadonlyMap<string, number>): void;
  /**
   * Closes the breaker of `host` (of every host when undefined), so their
   * gbifIDs are taken up at once; returns the hosts it closed.
   */
  closeBreakers(host?: string): string[];
  /**
   * Failed gbifIDs with a failure matching the filter become due now, with
   * their attempts reset, so the next claimRetryable takes them first. They
   * stay failed until they fully succeed. Returns how many.
   */
  requeueFailed(filter: { host?: string; code?: string }): number;
}

export interface IngestTally {
  /** gbifIDs new to the ledger. */
  readonly ids: number;
  /** Images new to the ledger (a gbifID's new URL). */
  readonly images: number;
  /** Rows whose (gbifID, URL) the ledger already had, from this file or before. */
  readonly duplicates: number;
  /** Done gbifIDs that gained an image and so are pending again. */
  readonly reopened: number;
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
  /** Image i's normalised URL at 2i, its creator at 2i + 1. */
  readonly texts: readonly string[];
  readonly hosts: Int32Array;
  readonly hostNames: readonly string[];
  readonly attributions: Int32Array;
  /** Attributions packed by packAttribution (input/rows.ts). */
  readonly packedAttributions: readonly string[];
}

export interface IngestWriter {
  /** Adds a batch's images; an image whose (gbifID, URL) the ledger already has counts as a duplicate. */
  addBatch(batch: ImageBatch): void;
  commit(): void;
  /** Drops everything added since the last commit. */
  rollback(): void;
  /** Commits, then builds whatever the ledger derives from the rows (indexes, the ID list). */
  finish(): void;
  /** Totals of what was committed so far. */
  tally(): IngestTally;
}

/** One image with its attribution and outcome, as `export` writes it. */
export interface ExportedImage {
  readonly gbifId: number;
  readonly imageIndex: number;
  /** NN of the stored file (its expected NN while not done). */
  readonly fileIndex: number;
  /** For an image a IIIF identifier expanded into: its canvas, from 0. */
  readonly partIndex: number | null;
  readonly url: string;
  readonly finalUrl: string | null;
  readonly license: string;
  readonly rightsHolder: string;
  readonly creator: string;
  readonly publisher: string;
  readonly width: number | null;
  readonly height: number | null;
  readonly bytes: number | null;
  readonly sha256: string | null;
  readonly state: ItemState;
  readonly errorCode: string | null;
}

/** Who holds a ledger for a run. */
export interface RunHolder {
  readonly pid: number;
  readonly machine: string;
  /** Epoch ms. */
  readonly since: number;
}

/** A ledger held for one download run; released when the run ends (or by the OS when its process dies). */
export interface RunLock {
  readonly holder: RunHolder;
  release(): void;
}

export interface Ledger {
  readonly location: string;
  /**
   * Takes the ledger for a download run, or throws LedgerError (ledger_busy)
   * naming the live run that holds it. A holder that died never blocks.
   */
  lockForRun(): RunLock;
  /** Every image in the given state, by gbifID and index, read lazily (constant memory). */
  exportImages(state: ItemState | 'all'): IterableIterator<ExportedImage>;
  /** Finishes an interrupted bulk load and builds what downloading needs; then the downloader's interface. */
  openDownloads(): DownloadLedger;
  openIngest(): IngestWriter;
  /** True when no image has ever been added. */
  isEmpty(): boolean;
  status(options: { hosts: number }): LedgerStatus;
  close(): void;
}
