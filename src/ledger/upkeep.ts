/**
 * What keeping a stored collection up costs the ledger to say: derivatives
 * to make, removed files to prune, images to re-check and what a recheck
 * found, hosts' measured rates and the freshness status shows. Re-exported
 * by ledger.ts; the methods are DownloadLedger's.
 */
import type { FetchedImage } from './download-ledger.js';

/** A done gbifID with derivatives to make: its files' NNs and the widths it lacks. */
export interface DerivationDue {
  readonly gbifId: number;
  readonly files: readonly number[];
  readonly missing: readonly number[];
}

/** An image due for a recheck: where its file is, and what the ledger knows of it. */
export interface RecheckImage {
  readonly imageId: number;
  readonly fileIndex: number;
  readonly url: string;
  readonly host: string;
  readonly sha256: string;
  readonly etag?: string;
  readonly lastModified?: string;
}

export interface RecheckDue {
  readonly gbifId: number;
  readonly images: readonly RecheckImage[];
  /** Derivative widths the gbifID has: a changed image's are made again with it. */
  readonly widths: readonly number[];
}

/** What a recheck found for one gbifID's images (any of the lists may be empty). */
export interface RecheckOutcome {
  readonly gbifId: number;
  /** The host confirmed these: a 304, or the same bytes (new validators, if it sent any). */
  readonly confirmed: readonly { readonly imageId: number; readonly etag?: string; readonly lastModified?: string }[];
  /** New bytes, validated and published in place of the old file. */
  readonly changed: readonly FetchedImage[];
  /** 404 or 410: gone at the source (its file stays until prune). */
  readonly gone: readonly number[];
}

/** What runs measured at a host: images fetched, the milliseconds their requests took, at how many in flight at most. */
export interface HostRate {
  readonly host: string;
  readonly images: number;
  readonly ms: number;
  readonly cap: number;
}

/** Freshness as a recheck (or --plan) measured it. */
export interface FreshnessSummary {
  /** Epoch ms it was measured at. */
  readonly at: number;
  /** Re-checkable images confirmed within their tier, and those overdue. */
  readonly current: number;
  readonly overdue: number;
}

/** A removed gbifID whose files may still be in the tree (herbdl prune). */
export interface PruneDue {
  readonly gbifId: number;
  readonly files: readonly number[];
  readonly widths: readonly number[];
  /** Set for a gbifID still in the export with images gone at the source (recheck): those images, whose files `files` names. */
  readonly gone?: readonly number[];
}
