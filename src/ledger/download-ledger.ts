/**
 * The downloader's side of the ledger: claims, outcomes, publishing intents,
 * breakers and, on a shared ledger, per-host request slots (host-budgets.ts).
 * Re-exported by ledger.ts.
 */
import type { LockHolder } from '../file-lock.js';
import type { HostBudgets } from './host-budgets.js';
import type { UpkeepLedger } from './upkeep.js';

/** One image of a claimed gbifID, as the downloader needs it. */
export interface ClaimedImage {
  readonly imageId: number;
  readonly imageIndex: number;
  readonly url: string;
  readonly host: string;
  /**
   * A stored copy of this URL under another gbifID (withStoredCopies): it is
   * linked, not fetched (one image URL is shared by up to 72 gbifIDs).
   */
  readonly stored?: StoredCopy;
  /**
   * Another worker is fetching this URL for a gbifID of its own, on a shared
   * ledger: this image waits for its stored copy (fetchesElsewhere) instead
   * of fetching the same URL at the same time.
   */
  readonly elsewhere?: boolean;
}

export interface RetryCursor {
  readonly dueAt: number;
  readonly gbifId: number;
}

export interface ClaimedId {
  readonly gbifId: number;
  /** Set for a failed gbifID claimed for its retry (and only then): when it was due, for the next cursor. */
  readonly dueAt?: number;
  /** Runs that have failed it so far. */
  readonly attempts: number;
  readonly images: readonly ClaimedImage[];
  /** Set on a gbifID claimed from its parking (claimBlocked, claimProbes): the host it was parked behind. */
  readonly blockedBy?: string;
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
  /** The host's validators for the body, kept for a later recheck's conditional request. */
  readonly etag?: string;
  readonly lastModified?: string;
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
  /** Paths to remove: files new to the tree (a run's publish, a derivative), or to be removed (prune). */
  readonly paths: readonly string[];
  /**
   * [backup, final] pairs: files of a done gbifID being replaced (recheck),
   * each kept first as a backup link; undoing renames the backup back, so
   * the gbifID keeps its old complete set.
   */
  readonly restore?: readonly (readonly [string, string])[];
}

/** Who holds a claim, a lease on a host's slot, or a run: one process on one machine, as a file lock's holder is. */
export type WorkerId = LockHolder;

/** A gbifID a run set aside, and the host whose open breaker holds it, if one does (DownloadLedger.setAside). */
export interface SetAsideId {
  readonly gbifId: number;
  readonly blockedBy?: string;
}

/** What a run that has claimed all it could waits for (DownloadLedger.pendingElsewhere). */
export interface HeldElsewhere {
  /** Whether any pending or due gbifIDs this run does not hold remain, other than those parked behind open breakers. */
  readonly pending: boolean;
  /** Whether some of them no live worker holds: the only ones a pass over the ledger's gbifIDs can claim. */
  readonly free: boolean;
}

/**
 * The downloader's side of the ledger. Every call is a promise: a ledger on a
 * database server answers over the network. Callers move work in batches
 * (claims of hundreds of gbifIDs, group commits), never one call per request.
 * What keeping a stored collection up asks of it is in upkeep.ts.
 */
export interface DownloadLedger extends UpkeepLedger {
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
   * The claimed gbifIDs again, each image with a stored copy of its URL where
   * there is one (`stored`). Claims leave it out: a run looks copies up only
   * for the gbifIDs it takes in, not for those it sets aside at once because
   * a host's breaker is open, which after the first runs over an export are
   * most of them (looking up each image's URL was half of setting 1.6M aside).
   */
  withStoredCopies(claimed: readonly ClaimedId[]): Promise<ClaimedId[]>;
  /**
   * Pending gbifIDs this run does not hold, and failed ones due by `dueBy`
   * with fewer than `maxAttempts` attempts: other workers hold them, or they
   * are free (handed back, or a dead or stopped worker's). None on a ledger
   * one run holds alone. A run that has claimed all it could waits while any
   * remain, and goes over the due and pending IDs again when some are free.
   */
  pendingElsewhere(dueBy: number, maxAttempts: number): Promise<HeldElsewhere>;
  /**
   * For URLs of images claimed `elsewhere`: a stored copy where another
   * worker's gbifID with the URL is now done; 'ours' where this worker is now
   * to fetch it (the other died, stopped, or let its gbifID go); nothing for
   * those still being fetched elsewhere. One statement or two for all of
   * them; never asked of a ledger one run holds alone.
   */
  fetchesElsewhere(urls: readonly string[]): Promise<Map<string, StoredCopy | 'ours'>>;
  /**
   * Notes claimed gbifIDs this run set aside. Those `blockedBy` a host's open
   * breaker are parked behind it in the ledger: no pass over the pending and
   * due gbifIDs claims them again, in this run or any later one, by any
   * worker, until a run takes them up (claimBlocked) once the host answers or
   * to probe it. A later run over an export whose dead hosts hold millions
   * then reads none of them. Parked pending ones are counted on their host
   * for `status`. The others (set aside as the run stops, or kept throttled)
   * stay pending as they were; a shared ledger lets them go.
   */
  setAside(asides: readonly SetAsideId[]): Promise<void>;
  /**
   * Up to `limit` gbifIDs parked behind `host`, in key order, claimed with
   * their images and parked no more; a failed one with when it was due.
   */
  claimBlocked(host: string, limit: number): Promise<ClaimedId[]>;
  /**
   * For each of `hosts`, one gbifID parked behind it (the first by key that no one holds), claimed as
   * claimBlocked claims: the probes of many hosts whose cooldowns passed together (thousands, when an
   * export's dead hosts opened at once) in one claim. A host with none left has none.
   */
  claimProbes(hosts: readonly string[]): Promise<ClaimedId[]>;
  /**
   * Hosts that have gbifIDs parked behind them (pending or failed), each with when its breaker may be
   * probed (epoch ms; null when it is closed), in no order: one index probe per host.
   */
  blockedHosts(): Promise<Map<string, number | null>>;
  /** Other workers whose lease is live (none on a SQLite ledger): their temporaries are left alone. */
  liveWorkers(): Promise<WorkerId[]>;
  /** Durably notes the files about to be renamed into place, or removed (before any rename). */
  beginPublish(intents: readonly PublishIntent[]): Promise<void>;
  /**
   * Marks gbifIDs done with every image, and clears their intents and
   * claims, in one transaction; each gbifID's derivatives are then exactly
   * `widths` (none when not given). A gbifID that has gained an image since
   * it was claimed (an ingest beside the run) has its images recorded but
   * stays pending, as a done one that gains an image is reopened: returns
   * those gbifIDs.
   */
  recordDone(done: readonly DoneId[]): Promise<readonly number[]>;
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
  /**
   * Closes the breaker of `host` (of every host when undefined), so the next
   * run takes their parked gbifIDs up at once; returns the hosts it closed.
   */
  closeBreakers(host?: string): Promise<string[]>;
  /**
   * Failed gbifIDs with a failure matching the filter become due now, with
   * their attempts reset, so the next claimRetryable takes them first. They
   * stay failed until they fully succeed. Returns how many.
   */
  requeueFailed(filter: { host?: string; code?: string }): Promise<number>;
  /** The state of each of these gbifIDs the ledger has (adopt: what a file on disk stands for). */
  idStates(gbifIds: readonly number[]): Promise<Map<number, IdState>>;
  /**
   * Claims exactly these gbifIDs where they are pending or failed and no
   * live worker holds them (adopt, whose files are already on disk); the
   * others are left out. In key order, with their images but no stored
   * copies: looking those up reads the URL index at random, for nothing.
   */
  claimIds(gbifIds: readonly number[]): Promise<ClaimedId[]>;
  /**
   * Records images stored while their gbifID stays pending (adopt's flat
   * layout gives a gbifID's first image only): a later claim offers each
   * as a stored copy of itself, so a run links it and fetches the others.
   */
  recordStored(stored: readonly { gbifId: number; images: readonly FetchedImage[] }[]): Promise<void>;
  /** Hands claimed gbifIDs back as they were, for any worker to take (nothing to do on a ledger one run holds). */
  handBack(gbifIds: readonly number[]): Promise<void>;
  /** Set on a ledger shared by workers: per-host politeness for all of them together. */
  readonly hostBudgets?: HostBudgets;
}

/** A gbifID published whole: its images, and the derivative widths published with them. */
export interface DoneId {
  readonly gbifId: number;
  readonly images: readonly FetchedImage[];
  readonly widths?: readonly number[];
}

/** A gbifID's state in the ledger, by its name. */
export type IdState = 'pending' | 'done' | 'failed' | 'excluded' | 'removed';

export interface FailedId {
  readonly gbifId: number;
  readonly failures: readonly FailedImage[];
  readonly retryAt: number | null;
}
