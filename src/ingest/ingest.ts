/**
 * Ingest: multimedia rows in, ledger rows out. Streams each file once, in
 * batches of committed rows, so memory stays flat whatever the file's size and
 * an interrupted ingest resumes by simply running again.
 */
import { InputError } from '../errors.js';
import { mapColumns, type ColumnMap } from '../input/columns.js';
import { LineTooLongError, readLineBatches } from '../input/lines.js';
import { describeReadFailure, openMultimedia, type MultimediaSource } from '../input/open-source.js';
import { classifyRow, SKIP_REASONS, type SkipReason } from '../input/rows.js';
import type { IngestWriter, Ledger } from '../ledger/ledger.js';

export interface IngestProgress {
  readonly file: string;
  readonly bytesRead: number;
  readonly totalBytes: number;
  readonly rowsRead: number;
}

export interface IngestOptions {
  /** Rows per ledger transaction: the most a crash can take back. */
  readonly batchRows?: number;
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
  /** Done gbifIDs that gained an image and so are pending again. */
  readonly reopened: number;
  readonly skipped: Readonly<Record<SkipReason, number>>;
  readonly interrupted: boolean;
  readonly elapsedMs: number;
  readonly rowsPerSecond: number;
}

const DEFAULT_BATCH_ROWS = 50_000;

interface FileCounts {
  rowsRead: number;
  /** rowsRead at the last commit. */
  committedRows: number;
  skipped: Record<SkipReason, number>;
  interrupted: boolean;
}

function emptySkips(): Record<SkipReason, number> {
  return Object.fromEntries(SKIP_REASONS.map((r) => [r, 0])) as Record<SkipReason, number>;
}

async function ingestOne(source: MultimediaSource, writer: IngestWriter, counts: FileCounts, options: IngestOptions): Promise<void> {
  const batchRows = options.batchRows ?? DEFAULT_BATCH_ROWS;
  let columns: ColumnMap | undefined;
  let sinceCommit = 0;
  const report = () =>
    options.onProgress?.({ file: source.file, bytesRead: source.bytesRead(), totalBytes: source.totalBytes, rowsRead: counts.rowsRead });
  const skipped = counts.skipped;
  for await (const lines of readLineBatches(source.stream)) {
    for (const line of lines) {
      if (line === '') continue;
      if (columns === undefined) {
        const mapped = mapColumns(line.split('\t'));
        if ('problem' in mapped) throw new InputError(source.file, mapped.problem, 'bad_header');
        columns = mapped;
        continue;
      }
      counts.rowsRead++;
      const row = classifyRow(line.split('\t'), columns);
      if (typeof row === 'string') skipped[row]++;
      else writer.add(row);
      if (++sinceCommit >= batchRows) {
        writer.commit();
        counts.committedRows = counts.rowsRead;
        sinceCommit = 0;
        if (options.signal?.aborted) {
          counts.interrupted = true;
          return;
        }
      }
    }
    report();
    if (options.signal?.aborted) {
      writer.commit();
      counts.interrupted = true;
      return;
    }
  }
  if (columns === undefined) throw new InputError(source.file, 'has no header line: expected a GBIF multimedia.txt', 'bad_header');
  writer.commit();
  report();
}

export async function ingestFiles(files: readonly string[], ledger: Ledger, options: IngestOptions = {}): Promise<IngestSummary> {
  const started = performance.now();
  const writer = ledger.openIngest();
  const counts: FileCounts = { rowsRead: 0, committedRows: 0, skipped: emptySkips(), interrupted: false };
  for (const file of files) {
    const source = await openMultimedia(file);
    const committedBefore = counts.committedRows;
    try {
      await ingestOne(source, writer, counts, options);
    } catch (err) {
      // Whatever was added since the last commit goes; committed batches are
      // whole rows and stay, and re-running with a good file completes them.
      writer.rollback();
      writer.finish();
      if (err instanceof InputError) throw err;
      const committedRows = counts.committedRows - committedBefore;
      const problem = err instanceof LineTooLongError ? err.message : describeReadFailure(source, err);
      const kept = committedRows > 0 ? ` after row ${counts.rowsRead} (its first ${committedRows} rows are in the ledger; ingest the complete file to finish)` : ' (nothing of it was written)';
      throw new InputError(file, `${problem}${kept}`, 'bad_input', { cause: err });
    } finally {
      source.close();
    }
    if (counts.interrupted) break;
  }
  writer.finish();
  const tally = writer.tally();
  const elapsedMs = performance.now() - started;
  return {
    files,
    rowsRead: counts.rowsRead,
    gbifIds: tally.ids,
    images: tally.images,
    duplicates: tally.duplicates,
    reopened: tally.reopened,
    skipped: counts.skipped,
    interrupted: counts.interrupted,
    elapsedMs: Math.round(elapsedMs),
    rowsPerSecond: Math.round(counts.rowsRead / Math.max(elapsedMs / 1000, 1e-3)),
  };
}
