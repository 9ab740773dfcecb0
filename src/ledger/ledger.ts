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
  /** Workers of a shared ledger, live ones first (empty for a SQLite file). */
  readonly workers: readonly WorkerStatus[];
}

/** One worker of a shared ledger, as `status` lists it. */
export interface WorkerStatus extends WorkerId {
  readonly worker: string;
  /** Epoch ms of its last heartbeat. */
  readonly heartbeat: number;
  /** True when its lease has run out (it died, or stopped without a word). */
  readonly expired: boolean;
  readonly stopped: boolean;
  /** gbifIDs it holds now. */
  readonly claimed: number;
  readonly done: number;
  readonly failed: number;
  readonly imagesPerSecond: number;
}

/** One image of a claimed gbifID, as the downloader needs it. */
export interface ClaimedImage {
  readonly imageId: number;
  readonly imageIndex: number;
  readonly url: string;
  readonly host: string;
  /**
   * A stored copy of this URL under another gbifID, found at claim time: it
   * is linked, not fetched (one image URL is shared by up to 72 gbifIDs).
   */
  readonly stored?: StoredCopy;
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
  /**
   * Set when some of its images were stored before (a newer export reopened
   * it): the NNs of its files in the tree now, which may outnumber the new set.
   */
  readonly storedFiles?: readonly number[];
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

/** Who holds a claim, a lease on a host's slot, or a run: one process on one machine. */
export interface WorkerId {
  readonly pid: number;
  readonly machine: string;
  /** Epoch ms. */
  readonly since: number;
}

/**
 * The downloader's side of the ledger. Every call is a promise: a ledger on a
 * database server answers over the network. Callers move work in batches
 * (claims of hundreds of gbifIDs, group commits), never one call per request.
 */
export interface DownloadLedger {
  /** Pending gbifIDs above `afterGbifId` that no live worker holds, in key order, now claimed by this run. */
  claimPending(afterGbifId: number, limit: number): Promise<ClaimedId[]>;
  /**
   * Failed gbifIDs whose failures were all transient, due by `dueBy`, tried
   * fewer than maxAttempts times, in due order after `cursor` (keyset paging,
   * so an ID released within a run is not claimed twice).
   */
  claimRetryable(cursor: RetryCursor, dueBy: number, maxAttempts: number, limit: number): Promise<ClaimedId[]>;
  /**
   * Notes claimed gbifIDs to take up again later in this run (their host's
   * queue was full). A SQLite ledger keeps them for this run, not in memory:
   * behind one slow host that holds millions of gbifIDs the list can be most
   * of the export. A shared ledger hands them back instead, so that another
   * worker may take them; this run meets them again when it goes over the
   * pending IDs once more (pendingElsewhere). They stay pending either way.
   */
  deferIds(gbifIds: readonly number[]): Promise<void>;
  /** Up to `limit` deferred gbifIDs, oldest first, with their images; they are deferred no more. */
  claimDeferred(limit: number): Promise<ClaimedId[]>;
  /**
   * Pending gbifIDs this run does not hold: other workers hold them, or they
   * are free (handed back, or a dead worker's with its lease run out). 0 on
   * a ledger one run holds alone. A run that has claimed all it could waits
   * and goes over the pending IDs again while any remain.
   */
  pendingElsewhere(): Promise<number>;
  /**
   * Notes claimed gbifIDs this run set aside (their host's breaker is open):
   * they stay with it until it ends, and other workers do not wait for them.
   */
  setAside(gbifIds: readonly number[]): Promise<void>;
  /** Other workers whose lease is live (none on a SQLite ledger): their temporaries are left alone. */
  liveWorkers(): Promise<WorkerId[]>;
  /** Durably notes the files about to be renamed into place, or removed (before any rename). */
  beginPublish(intents: readonly PublishIntent[]): Promise<void>;
  /** Marks gbifIDs done with every image, and clears their intents and claims, in one transaction. */
  recordDone(done: readonly { gbifId: number; images: readonly FetchedImage[] }[]): Promise<void>;
  /**
   * Intents of runs that died between rename and commit, that this run may
   * undo: on a shared ledger, only those of gbifIDs no live worker holds.
   */
  openIntents(): Promise<PublishIntent[]>;
  clearIntents(gbifIds: readonly number[]): Promise<void>;
  /** Marks gbifIDs failed, each with retryAt (epoch ms) when every failure was transient, else null. */
  recordFailed(failed: readonly FailedId[]): Promise<void>;
  /** Hosts whose breaker is open, with when it may be probed (epoch ms). */
  openBreakers(): Promise<Map<string, number>>;
  /** Persists a host's breaker so `status` can show what is blocked and later runs respect it. */
  recordBreaker(host: string, openUntil: number | null): Promise<void>;
  /** Notes, for hosts whose breaker is open, how many pending gbifIDs a run found waiting on each. */
  recordBlocked(blocked: ReadonlyMap<string, number>): Promise<void>;
  /**
   * Closes the breaker of `host` (of every host when undefined), so their
   * gbifIDs are taken up at once; returns the hosts it closed.
   */
  closeBreakers(host?: string): Promise<string[]>;
  /**
   * Failed gbifIDs with a failure matching the filter become due now, with
   * their attempts reset, so the next claimRetryable takes them first. They
   * stay failed until they fully succeed. Returns how many.
   */
  requeueFailed(filter: { host?: string; code?: string }): Promise<number>;
  /** Set on a ledger shared by workers: per-host politeness for all of them together. */
  readonly hostBudgets?: HostBudgets;
}

/** What a worker has for a host now: requests it would send (in flight and waiting, at most --per-host), and in flight. */
export interface HostDemand {
  readonly host: string;
  readonly want: number;
  readonly inFlight: number;
  /** Slots it will keep: it has already stopped starting requests beyond these (never below inFlight). */
  readonly keep: number;
  /** Set when the worker saw the host say slow down (429, Retry-After): no worker asks it before then. */
  readonly cooldownUntil?: number;
}

/** What the other workers' share of the ledger says about a host. */
export interface HostNews {
  /** Request slots this worker owns there now. */
  readonly slots: number;
  /** Its fair share: --per-host over the workers with work waiting for it. */
  readonly fair: number;
  readonly cooldownUntil?: number;
  readonly breakerOpenUntil?: number;
}

/**
 * Per-host request slots shared by every worker of a ledger. A worker sends
 * to a host only as many requests at once as it owns slots there; it gives
 * back what it does not need, keeps its fair share while others wait, and
 * takes free slots (or a dead worker's) in each exchange, once a second, in a
 * handful of statements for all its hosts. A 429 or an open breaker that one
 * worker saw reaches the others in the same exchange.
 */
export interface HostBudgets {
  exchange(perHost: number, demand: readonly HostDemand[]): Promise<Map<string, HostNews>>;
}

export interface FailedId {
  readonly gbifId: number;
  readonly failures: readonly FailedImage[];
  readonly retryAt: number | null;
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
  addBatch(batch: ImageBatch): Promise<void>;
  commit(): Promise<void>;
  /** Drops everything added since the last commit. */
  rollback(): Promise<void>;
  /** Commits, then builds whatever the ledger derives from the rows (indexes, the ID list); lets go of the ledger's ingest lock. */
  finish(): Promise<void>;
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
export type RunHolder = WorkerId;

/**
 * A download run's place on the ledger: alone on a SQLite file (a second run
 * is refused), one worker among many on PostgreSQL (its claims leased and
 * kept alive by a heartbeat). Released when the run ends, handing back its
 * claims; a process that dies lets go by itself (the OS drops the file lock;
 * a worker's lease expires).
 */
export interface RunLock {
  readonly holder: RunHolder;
  /** Throws once the run has lost its hold (its lease expired): it must stop before it publishes anything more. */
  check(): void;
  release(): Promise<void>;
}

export interface Ledger {
  readonly location: string;
  /**
   * Takes the ledger for a download run, or throws LedgerError (ledger_busy)
   * naming the live run that holds it. A holder that died never blocks.
   */
  lockForRun(options: { leaseMs: number }): Promise<RunLock>;
  /** Every image in the given state, by gbifID and index, read lazily (constant memory). */
  exportImages(state: ItemState | 'all'): AsyncIterable<ExportedImage>;
  /** Finishes an interrupted bulk load and builds what downloading needs; then the downloader's interface for the run `lock` holds. */
  openDownloads(lock: RunLock): Promise<DownloadLedger>;
  openIngest(): Promise<IngestWriter>;
  /** True when no image has ever been added. */
  isEmpty(): Promise<boolean>;
  status(options: { hosts: number }): Promise<LedgerStatus>;
  close(): Promise<void>;
}
