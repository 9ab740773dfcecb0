/**
 * What both ledgers' tables have in common, read the same way: an image's
 * stored outcome, an export line, and ingest tallies. Both schemas keep
 * these columns under the same names, so one reading serves both.
 */
import type { ExportedImage, FreshnessSummary, HostCounts, ImageOutcome, IngestTally, ItemState, LedgerStatus, PublishIntent, StateCounts, StoredFile, VerifiedSummary, VerifyDue } from './ledger.js';

/** A done image's (or IIIF part's) outcome columns. */
export interface OutcomeRow {
  http_status: number;
  final_url: string;
  content_type: string;
  bytes: number;
  sha256: string;
  width: number | null;
  height: number | null;
  received_format: string | null;
}

export function outcomeOf(row: OutcomeRow): ImageOutcome {
  return {
    httpStatus: row.http_status,
    finalUrl: row.final_url,
    contentType: row.content_type,
    bytes: row.bytes,
    sha256: row.sha256,
    ...(row.width !== null && row.height !== null ? { width: row.width, height: row.height } : {}),
    ...(row.received_format !== null ? { receivedFormat: row.received_format } : {}),
  };
}

/**
 * States as both ledgers store them (ids.state and images.state). An
 * excluded gbifID is held by another dataset the user named (`herbdl
 * exclude`): never downloaded; its images not done are excluded too.
 */
export const STATE = { pending: 0, done: 1, failed: 2, excluded: 3, removed: 4 } as const;
export const STATE_NAME = ['pending', 'done', 'failed', 'excluded', 'removed'] as const;
/** The totals row counting gbifIDs in each state, by state number. */
export const TOTAL_NAME = ['ids_pending', 'ids_done', 'ids_failed', 'ids_excluded', 'ids_removed'] as const;
/** The totals row counting removed images (the others are counted per host). */
export const IMAGES_REMOVED = 'images_removed';

/** gbifID counts from the totals rows; images not in the first three states are excluded. */
export function idCounts(totals: ReadonlyMap<string, number>): StateCounts {
  const [pending, done, failed, excluded, removed] = TOTAL_NAME.map((name) => Number(totals.get(name) ?? 0)) as [number, number, number, number, number];
  return { total: pending + done + failed + excluded, pending, done, failed, excluded, removed };
}

/** The totals row counting gbifIDs that have derivatives of a width. */
export function derivedTotalName(width: number): string {
  return `derived_w${width}`;
}

/** Derivative widths and their gbifIDs from the totals rows, narrowest first. */
export function derivedCounts(totals: ReadonlyMap<string, number>): { width: number; ids: number }[] {
  const out: { width: number; ids: number }[] = [];
  for (const [name, value] of totals) {
    const m = /^derived_w([0-9]+)$/.exec(name);
    if (m && Number(value) > 0) out.push({ width: Number(m[1]), ids: Number(value) });
  }
  return out.sort((a, b) => a.width - b.width);
}

/** Status's freshness: the changed and gone counters, and the last recheck's summary (JSON kept in the ledger), if any. */
export function freshnessOf(totals: ReadonlyMap<string, number>, last: string | undefined, goneIds: readonly number[]): LedgerStatus['freshness'] {
  const counts = { changed: Number(totals.get('images_changed') ?? 0), gone: Number(totals.get('images_gone') ?? 0), goneIds };
  return last ? { ...counts, last: JSON.parse(last) as FreshnessSummary } : counts;
}

/** Status's last verify, from the JSON kept in the ledger's notes (nothing if none ran). */
export function verifiedOf(kept: string | undefined): { verified?: VerifiedSummary } {
  return kept ? { verified: JSON.parse(kept) as VerifiedSummary } : {};
}

/** An intent as the publishing table keeps it: its paths (a JSON array), or with restores a JSON object. */
export function intentText(intent: PublishIntent): string {
  return intent.restore && intent.restore.length > 0 ? JSON.stringify({ paths: intent.paths, restore: intent.restore }) : JSON.stringify(intent.paths);
}

export function intentOf(gbifId: number, text: string): PublishIntent {
  const kept = JSON.parse(text) as string[] | { paths: string[]; restore: [string, string][] };
  return Array.isArray(kept) ? { gbifId, paths: kept } : { gbifId, paths: kept.paths, restore: kept.restore };
}

/** The first gbifIDs with an image gone at the source (served by the partial index images_gone). */
export const GONE_IDS_SQL = `SELECT DISTINCT gbif_id FROM images WHERE gone_at IS NOT NULL AND state = ${STATE.done} ORDER BY gbif_id LIMIT 20`;

/**
 * The files of done gbifIDs (herbdl verify), by gbifID: a done image's
 * own, or each part of the IIIF identifier it was expanded into, with the
 * size and sha256 recorded when it was stored. `ids` picks the gbifIDs (a
 * condition on i.gbif_id).
 */
export function doneFilesSql(ids: string): string {
  return `SELECT i.gbif_id, COALESCE(p.file_index, i.file_index, i.image_index) AS nn,
      CASE WHEN p.image_id IS NULL THEN i.bytes ELSE p.bytes END AS bytes, CASE WHEN p.image_id IS NULL THEN i.sha256 ELSE p.sha256 END AS sha256,
      i.image_id, p.part_index
    FROM images i LEFT JOIN image_parts p ON p.image_id = i.image_id
    WHERE ${ids} AND i.state = ${STATE.done} AND (p.image_id IS NOT NULL OR i.received_format IS NULL OR i.received_format NOT LIKE 'iiif%')
    ORDER BY i.gbif_id`;
}

/** A row of doneFilesSql: gbifID, NN, bytes, sha256, image id, part index. */
export type DoneFileRow = readonly [number, number, number | null, string | null, number, number | null];

/** `ids` (ascending, each with its derivative widths) each with its files from rows of doneFilesSql in their order. */
export function groupDoneFiles(ids: readonly { gbifId: number; widths: readonly number[] }[], rows: Iterable<DoneFileRow>): VerifyDue[] {
  const due = ids.map(({ gbifId, widths }) => ({ gbifId, widths, files: [] as StoredFile[] }));
  let k = 0;
  for (const [gbifId, fileIndex, bytes, sha256, imageId, partIndex] of rows) {
    while (k < due.length && (due[k] as VerifyDue).gbifId !== Number(gbifId)) k++;
    (due[k] as { files: StoredFile[] } | undefined)?.files.push({ imageId: Number(imageId), partIndex, fileIndex, bytes: bytes === null ? null : Number(bytes), sha256 });
  }
  return due;
}

/** Image counts from the hosts' counters: an image in none of pending, done or failed is an excluded gbifID's. */
export function imageCounts(sums: { total: number; pending: number; done: number; failed: number }, removed = 0): StateCounts {
  const [total, pending, done, failed] = [sums.total, sums.pending, sums.done, sums.failed].map(Number) as [number, number, number, number];
  return { total, pending, done, failed, excluded: total - pending - done - failed, removed: Number(removed) };
}

/**
 * The export's select list: a IIIF identifier that was expanded gives one
 * line per part (its files), any other image one line. `done` is the
 * schema's number for done.
 */
export function exportColumns(done: number): { select: string; from: string; order: string } {
  return {
    select: `i.gbif_id, i.image_index, COALESCE(p.file_index, i.file_index, i.image_index), p.part_index, i.url,
       COALESCE(p.final_url, i.final_url), a.license, a.rights_holder, i.creator, a.publisher,
       COALESCE(p.width, i.width), COALESCE(p.height, i.height), COALESCE(p.bytes, i.bytes), COALESCE(p.sha256, i.sha256),
       i.state, i.error_code`,
    from: `images i JOIN attributions a USING (attribution_id) LEFT JOIN image_parts p ON p.image_id = i.image_id AND i.state = ${done}`,
    order: 'i.gbif_id, i.image_index, p.part_index',
  };
}

/**
 * gbifIDs (or rows) a long read of a SQLite ledger takes at a time, each
 * page a statement of its own, read whole and let go (PostgreSQL pages too,
 * 5,000 to a round trip). A read left open for a whole export or pack holds
 * its snapshot, and a run beside it could not checkpoint its WAL: 5.5 MB a
 * second of run, measured, gigabytes over an hour's pack. Pages of 5,000
 * cost an export of 2M images 40 MB more peak RSS than one open read; of
 * 1,000, 2 to 12 MB, in the same time.
 */
export const READ_PAGE = 1000;

/**
 * One file of a done gbifID by its NN (its image, or its IIIF part), with
 * exportColumns' select list; `gbifId` and `nn` are the statement's two
 * parameters as each driver writes them.
 */
export function doneFileSql(done: number, gbifId: string, nn: string): string {
  const { select, from } = exportColumns(done);
  return `SELECT ${select} FROM ${from} WHERE i.gbif_id = ${gbifId} AND i.state = ${done} AND COALESCE(p.file_index, i.file_index, i.image_index) = ${nn}`;
}

/** One row of exportColumns' select list, read. */
export function exportedImage(r: readonly unknown[]): ExportedImage {
  return {
    gbifId: r[0] as number,
    imageIndex: r[1] as number,
    fileIndex: r[2] as number,
    partIndex: r[3] as number | null,
    url: r[4] as string,
    finalUrl: r[5] as string | null,
    license: r[6] as string,
    rightsHolder: r[7] as string,
    creator: r[8] as string,
    publisher: r[9] as string,
    width: r[10] as number | null,
    height: r[11] as number | null,
    bytes: r[12] as number | null,
    sha256: r[13] as string | null,
    state: STATE_NAME[r[14] as number] as ItemState,
    errorCode: r[15] as string | null,
  };
}

/** The host columns `status` lists, named as HostCounts names them (both schemas keep them alike). */
export const HOST_COLUMNS = 'host, images, pending, done, failed, breaker_open_until AS "breakerOpenUntil", NULLIF(blocked_ids, 0) AS "blockedIds"';
/** The count of pending gbifIDs parked behind a host less `n` (a SQL expression): none, not 0, once all are taken up. */
export const BLOCKED_LESS = (n: string) => `CASE WHEN blocked_ids > ${n} THEN blocked_ids - ${n} END`;

/** A host row without its empty (null) columns: no breaker, nothing blocked. */
export function hostCounts(row: HostCounts): HostCounts {
  return Object.fromEntries(Object.entries(row).filter(([, v]) => v !== null && v !== undefined)) as unknown as HostCounts;
}

export const NO_TALLY: IngestTally = { ids: 0, images: 0, duplicates: 0, reopened: 0, excluded: 0, removedIds: 0, removedImages: 0 };

/**
 * A bulk load's tally once its finisher has run: the load counted runs of
 * rows as new IDs (an ID's rows come together); the finisher knows the true
 * figures, and the repeats it dropped.
 */
export function afterBulkLoad(tally: IngestTally, result: { readonly ids: number; readonly duplicates: number }): IngestTally {
  return { ...tally, ids: result.ids, images: tally.images - result.duplicates, duplicates: tally.duplicates + result.duplicates };
}

export function addTallies(a: IngestTally, b: IngestTally): IngestTally {
  return {
    ids: a.ids + b.ids,
    images: a.images + b.images,
    duplicates: a.duplicates + b.duplicates,
    reopened: a.reopened + b.reopened,
    excluded: a.excluded + b.excluded,
    removedIds: a.removedIds + b.removedIds,
    removedImages: a.removedImages + b.removedImages,
  };
}
