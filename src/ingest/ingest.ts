/**
 * Ingest: multimedia rows in, ledger rows out. Streams each file once,
 * committing about once a second, so memory stays flat whatever the file's
 * size and an interrupted ingest resumes by simply running again. Two
 * threads: this one reads the input and writes the ledger; a worker parses
 * and classifies the rows (row-classifier.ts), chunks in flight a few at a time.
 */
import { InputError, SnapshotRefusedError } from '../errors.js';
import { mapColumns } from '../input/columns.js';
import { LineTooLongError, readLineChunks } from '../input/lines.js';
import { describeReadFailure, openDownloadFile, type DownloadSource } from '../input/open-source.js';
import { SKIP_REASONS, type SkipReason } from '../input/rows.js';
import type { IngestWriter, Ledger } from '../ledger/ledger.js';
import type { ClassifyReply } from './classify-worker.js';
import { ReplyReader, RowClassifier } from './row-classifier.js';

export interface IngestProgress {
  readonly file: string;
  readonly bytesRead: number;
  readonly totalBytes: number;
  readonly rowsRead: number;
}

export interface IngestOptions {
  /**
   * Milliseconds between ledger commits: the most ingest a crash can take
   * back. Each commit of a bulk load waits for the disk (fsync), so a commit
   * every 50k rows cost a tenth of the load's time.
   */
  readonly commitEveryMs?: number;
  /**
   * The files are the complete current state of the same query (ingest
   * --snapshot): once they are read whole, what the ledger has and they lack
   * is removed (see ledger/snapshots.ts). Not if the ingest stops first.
   */
  readonly snapshot?: boolean;
  /** A snapshot may remove at most this share of the ledger's images (1: any); more is refused, nothing removed. */
  readonly maxRemoval?: number;
  readonly signal?: AbortSignal;
  readonly onProgress?: (progress: IngestProgress) => void;
}

export interface IngestSummary {
  readonly files: readonly string[];
  readonly rowsRead: number;
  /** gbifIDs new to the ledger. */
  readonly gbifIds: number;
  /** Images new to the ledger. */
  readonly images: number;
  /** Rows whose (gbifID, URL) was already in the ledger or earlier in the input. */
  readonly duplicates: number;
  /** Done gbifIDs whose set of images changed (gained one, or in a snapshot lost one and kept others): pending again. */
  readonly reopened: number;
  /** gbifIDs it added or reopened that an exclusion list names: excluded, not pending. */
  readonly excluded: number;
  /** Set for ingest --snapshot: whether the snapshot was applied (the files were read whole). */
  readonly snapshot?: { readonly applied: boolean };
  /** Images the ledger had and the snapshot lacks, and gbifIDs left with no image: removed. */
  readonly removedIds: number;
  readonly removedImages: number;
  readonly skipped: Readonly<Record<SkipReason, number>>;
  readonly interrupted: boolean;
  readonly elapsedMs: number;
  readonly rowsPerSecond: number;
}

const DEFAULT_COMMIT_EVERY_MS = 1000;

interface FileCounts {
  rowsRead: number;
  /** rowsRead at the last commit, and when it was (performance.now()). */
  committedRows: number;
  committedAt: number;
  skipped: Record<SkipReason, number>;
  interrupted: boolean;
}

function emptySkips(): Record<SkipReason, number> {
  return Object.fromEntries(SKIP_REASONS.map((r) => [r, 0])) as Record<SkipReason, number>;
}

/** The first non-blank line of a chunk and what follows it; undefined if the chunk is all blank lines. */
function splitHeader(chunk: Buffer): { header: string; rest: Buffer } | undefined {
  for (let pos = 0; pos < chunk.length; ) {
    const newline = chunk.indexOf(10, pos);
    const end = newline < 0 ? chunk.length : newline;
    const line = chunk.toString('utf8', pos, end).replace(/\r$/, '');
    if (line !== '') return { header: line, rest: chunk.subarray(Math.min(end + 1, chunk.length)) };
    pos = end + 1;
  }
  return undefined;
}

/**
 * Errors the ledger raised while this ingest wrote to it: they are the
 * ledger's to report (a full disk, a server gone), never a fault of the file
 * being read.
 */
const ledgerFailures = new WeakSet<object>();

async function fromLedger<T>(call: Promise<T>): Promise<T> {
  try {
    return await call;
  } catch (err) {
    if (typeof err === 'object' && err !== null) ledgerFailures.add(err);
    throw err;
  }
}

async function ingestOne(source: DownloadSource, writer: IngestWriter, counts: FileCounts, options: IngestOptions): Promise<void> {
  const commitEveryMs = options.commitEveryMs ?? DEFAULT_COMMIT_EVERY_MS;
  const commit = async () => {
    await fromLedger(writer.commit());
    counts.committedRows = counts.rowsRead;
    counts.committedAt = performance.now();
  };
  const report = () =>
    options.onProgress?.({ file: source.file, bytesRead: source.bytesRead(), totalBytes: source.totalBytes, rowsRead: counts.rowsRead });
  let classifier: RowClassifier | undefined;
  const reader = new ReplyReader();
  /** Writes one classified chunk; true when Ctrl-C asked us to stop (after a commit). */
  const absorb = async (reply: ClassifyReply): Promise<boolean> => {
    counts.rowsRead += reply.rows;
    reply.skipped.forEach((n, i) => (counts.skipped[SKIP_REASONS[i] as SkipReason] += n));
    await fromLedger(writer.addBatch(reader.batch(reply)));
    if (performance.now() - counts.committedAt < commitEveryMs) return false;
    await commit();
    counts.interrupted = options.signal?.aborted ?? false;
    return counts.interrupted;
  };
  try {
    for await (const chunk of readLineChunks(source.chunks)) {
      let rows = chunk;
      if (!classifier) {
        const found = splitHeader(chunk);
        if (!found) continue;
        const columns = mapColumns(found.header.split('\t'));
        if ('problem' in columns) throw new InputError(source.file, columns.problem, 'bad_header');
        classifier = new RowClassifier(columns);
        rows = found.rest;
        if (rows.length === 0) continue;
      }
      if (classifier.send(rows) && (await absorb(await classifier.take()))) return;
      report();
      if (options.signal?.aborted) {
        // Stop at once: rows still with the classifier were never written, nor counted.
        await commit();
        counts.interrupted = true;
        return;
      }
    }
    if (!classifier) throw new InputError(source.file, 'has no header line: expected a GBIF multimedia.txt', 'bad_header');
    while (classifier.pending > 0) if (await absorb(await classifier.take())) return;
    await commit();
    report();
  } finally {
    await classifier?.close();
  }
}

export async function ingestFiles(files: readonly string[], ledger: Ledger, options: IngestOptions = {}): Promise<IngestSummary> {
  const started = performance.now();
  const writer = await ledger.openIngest({ snapshot: options.snapshot ?? false });
  const counts: FileCounts = { rowsRead: 0, committedRows: 0, committedAt: performance.now(), skipped: emptySkips(), interrupted: false };
  for (const file of files) {
    let source: DownloadSource;
    try {
      source = await openDownloadFile(file);
    } catch (err) {
      // Lets go of the ledger (a shared one's ingest lock and connection) before saying what is wrong.
      await writer.rollback();
      await writer.finish();
      throw err;
    }
    const committedBefore = counts.committedRows;
    try {
      await ingestOne(source, writer, counts, options);
    } catch (err) {
      // Whatever was added since the last commit goes; committed batches are
      // whole rows and stay, and re-running with a good file completes them.
      if (ledgerFailures.has(err as object)) {
        // The ledger's own error is the one to report, not a second one from letting it go.
        await writer.rollback().catch(() => {});
        await writer.finish().catch(() => {});
        throw err;
      }
      await writer.rollback();
      await writer.finish();
      if (err instanceof InputError) throw err;
      const committedRows = counts.committedRows - committedBefore;
      const problem = err instanceof LineTooLongError ? err.message : describeReadFailure(source, err);
      const kept = committedRows > 0 ? ` after row ${counts.rowsRead} (its first ${committedRows} rows are in the ledger; ingest the complete file to finish)` : ' (nothing of it was written)';
      // Named as read: in an unzipped download's folder, the multimedia file in it.
      throw new InputError(source.file, `${problem}${kept}`, 'bad_input', { cause: err });
    } finally {
      source.close();
    }
    if (counts.interrupted) break;
  }
  // A snapshot is applied only once every file is in: an interrupted one removes nothing.
  try {
    await writer.finish({ applySnapshot: !counts.interrupted, maxRemoval: options.maxRemoval ?? 1 });
  } catch (err) {
    // Said of the files read: they look like another query's export.
    if (err instanceof SnapshotRefusedError) throw new InputError(files.join(', '), err.message, err.code, { cause: err });
    throw err;
  }
  const tally = writer.tally();
  const elapsedMs = performance.now() - started;
  return {
    files,
    rowsRead: counts.rowsRead,
    gbifIds: tally.ids,
    images: tally.images,
    duplicates: tally.duplicates,
    reopened: tally.reopened,
    excluded: tally.excluded,
    ...(options.snapshot ? { snapshot: { applied: !counts.interrupted } } : {}),
    removedIds: tally.removedIds,
    removedImages: tally.removedImages,
    skipped: counts.skipped,
    interrupted: counts.interrupted,
    elapsedMs: Math.round(elapsedMs),
    rowsPerSecond: Math.round(counts.rowsRead / Math.max(elapsedMs / 1000, 1e-3)),
  };
}
