/**
 * The ledger: what herbdl knows about every gbifID and image, in the domain's
 * words. Everything outside src/ledger/ talks to this interface only, so a
 * ledger shared by many machines (PostgreSQL) can be a second implementation
 * without touching ingest, the scheduler or the CLI.
 */
import type { MediaImage } from '../input/rows.js';

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
export interface IngestWriter {
  /** Adds one image of a gbifID; false if the ledger already had that (gbifID, URL). */
  add(image: MediaImage): boolean;
  commit(): void;
  /** Drops everything added since the last commit. */
  rollback(): void;
  /** Commits, then builds whatever the ledger derives from the rows (indexes, the ID list). */
  finish(): void;
  /** Totals of what was committed so far. */
  tally(): IngestTally;
}

export interface Ledger {
  readonly location: string;
  openIngest(): IngestWriter;
  /** True when no image has ever been added. */
  isEmpty(): boolean;
  status(options: { hosts: number }): LedgerStatus;
  close(): void;
}
