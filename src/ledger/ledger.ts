/**
 * The ledger: what herbdl knows about every gbifID and image, in the domain's
 * words. Everything outside src/ledger/ talks to this interface only, so a
 * ledger shared by many machines (PostgreSQL) can be a second implementation
 * without touching ingest, the scheduler or the CLI.
 */
import type { WorkerId } from './download-ledger.js';
import type { DownloadLedger } from './download-ledger.js';
import type { IngestWriter } from './ingest-batch.js';
import type { ExcludeTally, UnexcludeTally } from './exclusions.js';
import type { FreshnessSummary, HostRate, VerifiedSummary } from './upkeep.js';
import type { Tier } from './freshness.js';
import type { LabelRow, LabelSummary, LabelWriter } from './labels.js';

export * from './download-ledger.js';
export * from './host-budgets.js';
export * from './upkeep.js';
export * from './ingest-batch.js';
export type { ExcludeTally, UnexcludeTally } from './exclusions.js';
export type { Tier } from './freshness.js';
export type { LabelRow, LabelSummary, LabelWriter } from './labels.js';
export { LabelCursor } from './labels.js';

export type ItemState = 'pending' | 'done' | 'failed' | 'excluded' | 'removed';

export interface StateCounts {
  readonly total: number;
  readonly pending: number;
  readonly done: number;
  readonly failed: number;
  /** gbifIDs another dataset holds (`herbdl exclude`), and their images not done: never downloaded. */
  readonly excluded: number;
  /**
   * gbifIDs and images a newer export (`ingest --snapshot`) no longer has: not
   * in `total`, never downloaded; their files stay until `herbdl prune`.
   */
  readonly removed: number;
}

export interface HostCounts {
  readonly host: string;
  readonly images: number;
  readonly pending: number;
  readonly done: number;
  readonly failed: number;
  /** Epoch ms until which the host's circuit breaker is open; its pending images wait on it. */
  readonly breakerOpenUntil?: number;
  /** With an open breaker: the pending gbifIDs parked behind it (DownloadLedger.setAside). */
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
  /** Hosts whose breaker is open now, with the pending images blocked on them: most pending first, as many as `hosts` (at least 10). */
  readonly blockedHosts: readonly HostCounts[];
  /** All hosts whose breaker is open now and their pending images: an export's dead hosts are counted in thousands. */
  readonly blocked: { readonly hosts: number; readonly pending: number };
  /** Workers of a shared ledger, live ones first (empty for a SQLite file). */
  readonly workers: readonly WorkerStatus[];
  /** Derivative widths, narrowest first, with the gbifIDs that have every file at each. */
  readonly derivatives: readonly { readonly width: number; readonly ids: number }[];
  /** Freshness: images a recheck found changed (and replaced) or gone at the source, and the last recheck's measure. */
  readonly freshness: {
    readonly changed: number;
    readonly gone: number;
    /** The first gbifIDs (up to 20) with an image gone at the source, its file kept until prune. */
    readonly goneIds: readonly number[];
    readonly last?: FreshnessSummary;
  };
  /** What the last `herbdl verify` found, if one ran. */
  readonly verified?: VerifiedSummary;
  /** The label fields and how many gbifIDs had labels when they were loaded (herbdl labels), if any were. */
  readonly labels?: LabelSummary;
}

/** Per host and tier, as `recheck --plan` reads them: re-checkable images and those due now. */
export interface PlanRow {
  readonly host: string;
  readonly tier: number;
  readonly images: number;
  readonly due: number;
}

/** One worker of a shared ledger, as `status` lists it. */
export interface WorkerStatus extends WorkerId {
  readonly worker: string;
  /** Epoch ms of its last heartbeat. */
  readonly heartbeat: number;
  /** True when its lease has run out (it died, or stopped without a word). */
  readonly expired: boolean;
  readonly stopped: boolean;
  /** gbifIDs it holds now to work on. */
  readonly claimed: number;
  /**
   * gbifIDs it parked behind open breakers in its run, as it last said (its
   * heartbeat); parked, no worker holds them (DownloadLedger.setAside).
   */
  readonly setAside: number;
  readonly done: number;
  readonly failed: number;
  readonly imagesPerSecond: number;
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

/** What Ledger.doneFile finds. */
export interface DoneFile {
  readonly image: ExportedImage | undefined;
  readonly publishing: boolean;
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
  /**
   * One file of a gbifID as the ledger has it now, if done (by its NN), and
   * whether the gbifID is being published (pack: a row it read a page
   * before may be older than the file).
   */
  doneFile(gbifId: number, fileIndex: number): Promise<DoneFile>;
  /** gbifIDs that have derivatives of `width`, ascending, read lazily (pack --width). */
  derivedIds(width: number): AsyncIterable<number>;
  /** Starts a load of labels with these fields, which replaces the ledger's labels when it finishes (herbdl labels; labels.ts). */
  openLabels(fields: readonly string[]): Promise<LabelWriter>;
  /** The label fields, and how many gbifIDs had labels when they were loaded; undefined before any load. */
  labelSummary(): Promise<LabelSummary | undefined>;
  /** Every gbifID's labels, ascending, read lazily (pack, export). */
  labels(): AsyncIterable<LabelRow>;
  /** Re-checkable images per host and tier under `tiers` at `now`, with what runs measured at each host (recheck --plan). */
  plan(tiers: readonly Tier[], now: number): Promise<{ rows: PlanRow[]; rates: HostRate[] }>;
  /** Finishes an interrupted bulk load and builds what downloading needs; then the downloader's interface for the run `lock` holds. */
  openDownloads(lock: RunLock): Promise<DownloadLedger>;
  /** An ingest; `snapshot`: its input is the complete current state (ingest --snapshot, see snapshots.ts). */
  openIngest(options?: { readonly snapshot?: boolean }): Promise<IngestWriter>;
  /**
   * Lists gbifIDs another dataset holds (a batch, sorted ascending, no
   * repeats) and excludes those pending or failed here, in one transaction.
   * IDs not in the ledger yet are excluded when an ingest adds them.
   */
  exclude(gbifIds: Float64Array): Promise<ExcludeTally>;
  /** Takes gbifIDs (sorted, no repeats) off the exclusion list and puts the excluded ones back in the queue, pending (`exclude --undo`). */
  unexclude(gbifIds: Float64Array): Promise<UnexcludeTally>;
  /** True when no image has ever been added. */
  isEmpty(): Promise<boolean>;
  status(options: { hosts: number }): Promise<LedgerStatus>;
  close(): Promise<void>;
}
