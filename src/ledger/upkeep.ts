/**
 * What keeping a stored collection up costs the ledger to say: derivatives
 * to make, removed files to prune, images to re-check and what a recheck
 * found, hosts' measured rates and the freshness status shows. Re-exported
 * by ledger.ts; DownloadLedger has these methods (it extends UpkeepLedger).
 */
import type { FetchedImage } from './download-ledger.js';
import type { Tier } from './freshness.js';

/**
 * A batch of a pass over the done gbifIDs (derive, verify; prune's over
 * those with images gone at the source), as a claim gives it: `due`, what
 * this pass takes; `last`, the last gbifID looked at
 * (undefined when none were left); `passedOver`, done gbifIDs among those
 * looked at that another worker held (on a shared ledger: a recheck replacing
 * a file, a derive, a worker killed before its lease ended), which the pass
 * comes back for (done-pass.ts). A claim of `only` such gbifIDs looks at them
 * alone, whatever `after`; one that looked at gbifIDs but took none of them
 * (all held) still says its `last`, and the pass goes on past them.
 */
export interface DoneBatch<T> {
  readonly last: number | undefined;
  readonly due: T[];
  readonly passedOver: readonly number[];
}

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
  /** The stored file's size as recorded: a file of another size (or none) is asked for whole and put back. */
  readonly bytes: number | null;
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
  /** The host confirmed these: a 304, or the same bytes (new validators, if it sent any); a stored file put back is among them. */
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

/** A file the ledger says a done gbifID has: its image (and IIIF part), its NN, and the size and sha256 recorded when it was stored (null if unknown). */
export interface StoredFile {
  readonly imageId: number;
  readonly partIndex: number | null;
  readonly fileIndex: number;
  readonly bytes: number | null;
  readonly sha256: string | null;
}

/** A done gbifID to verify (herbdl verify): every file it has in the tree, and the widths it has each of them at (derive). */
export interface VerifyDue {
  readonly gbifId: number;
  readonly files: readonly StoredFile[];
  readonly widths: readonly number[];
}

/** What the last `herbdl verify` found, kept for status. */
export interface VerifiedSummary {
  /** When it ended (epoch ms). */
  readonly at: number;
  /** Sizes and sha256 (--hash), or sizes only. */
  readonly hash: boolean;
  /** Done gbifIDs looked at, and their files (derivatives included). */
  readonly ids: number;
  readonly files: number;
  readonly missing: number;
  readonly damaged: number;
  /** gbifIDs with a file missing or damaged; of those, made pending again (--repair). */
  readonly brokenIds: number;
  readonly reopened: number;
  readonly interrupted: boolean;
  /** Interrupted: every gbifID up to this one was checked (verify --after it carries on). */
  readonly checkedThrough?: number;
}

/** The key the last verify's summary is kept under, in the ledger's notes (herbdl_meta, ledger_state). */
export const LAST_VERIFY = 'last_verify';

/** The ledger's side of derive, prune, recheck and verify: a part of DownloadLedger, kept here beside the shapes it moves. */
export interface UpkeepLedger {
  /**
   * Records derivatives published for done gbifIDs (herbdl derive) and
   * clears their intents; a gbifID no longer done gets no record.
   */
  recordDerived(derived: readonly { gbifId: number; widths: readonly number[] }[]): Promise<void>;
  /**
   * Done gbifIDs above `afterGbifId` (or of `only`), up to `limit` of them
   * looked at, each listed with the `widths` it lacks (and its files' NNs) if
   * it lacks any; `last` is the last one looked at, undefined when none were
   * left. On a shared ledger the listed ones are claimed until recordDerived
   * or handBack, and those another worker holds are passed over (DoneBatch).
   */
  derivationsDue(widths: readonly number[], afterGbifId: number, limit: number, only?: readonly number[]): Promise<DoneBatch<DerivationDue>>;
  /** Every derivative width the ledger has recorded, for any gbifID. */
  derivedWidths(): Promise<number[]>;
  /**
   * Removed gbifIDs (a newer export lacks them) above `afterGbifId`, up to
   * `limit` looked at, each listed with its files' NNs and derivative widths
   * if it may still have files in the tree; `last` as for derivationsDue.
   */
  prunable(afterGbifId: number, limit: number): Promise<{ last: number | undefined; due: PruneDue[] }>;
  /**
   * gbifIDs above `afterGbifId` (or of `only`) with images a recheck found
   * gone at the source, their files' NNs and the gone images (up to `limit`);
   * on a shared ledger claimed until recordPruned or handBack, those another
   * worker holds passed over (DoneBatch).
   */
  prunableGone(afterGbifId: number, limit: number, only?: readonly number[]): Promise<DoneBatch<PruneDue>>;
  /**
   * The files of these removed gbifIDs, or of these gone images, are no longer
   * in the tree: the removed gbifIDs' files are forgotten with their
   * derivatives; gone images become removed (a gbifID left with none is
   * removed); intents are cleared.
   */
  recordPruned(pruned: readonly PruneDue[]): Promise<void>;
  /**
   * Done gbifIDs above `afterGbifId` with images due for a recheck under
   * `tiers` at `now` (up to `limit` gbifIDs looked at), each with its due
   * images; on a shared ledger they are claimed (a lease, as a run's claims
   * are) until recordRechecked. `last` as for derivationsDue.
   */
  claimRecheck(tiers: readonly Tier[] | 'all', now: number, afterGbifId: number, limit: number): Promise<{ last: number | undefined; due: RecheckDue[] }>;
  /** What rechecks found, a gbifID at a time: confirmed, changed (new outcomes), gone; their intents and claims end. */
  recordRechecked(outcomes: readonly RecheckOutcome[]): Promise<void>;
  /** Adds what a run measured at each host (images, milliseconds of requests, the cap): recheck --plan's rates. */
  recordHostRates(rates: readonly HostRate[]): Promise<void>;
  /** Keeps a recheck's freshness summary, for status. */
  recordFreshness(summary: FreshnessSummary): Promise<void>;
  /**
   * Done gbifIDs above `afterGbifId` (or of `only`), up to `limit`, each
   * with its files; on a shared ledger they are claimed until recordVerified,
   * and those another worker holds are passed over (DoneBatch). `last` as for
   * derivationsDue.
   */
  claimVerify(afterGbifId: number, limit: number, only?: readonly number[]): Promise<DoneBatch<VerifyDue>>;
  /**
   * Ends the verification of `checked`, in one transaction: those in `reopen`
   * (a file missing or damaged) are done no more but pending; the files in
   * `lost` (missing or damaged) lose their recorded sha256, so that no run
   * takes one for a stored copy (the next fetches them, whatever is still in
   * the tree); the claims of all end. Returns how many it reopened.
   */
  recordVerified(checked: readonly number[], reopen: readonly number[], lost: readonly StoredFile[]): Promise<number>;
  /** Keeps what a verify found, for status. */
  recordVerifySummary(summary: VerifiedSummary): Promise<void>;
}
