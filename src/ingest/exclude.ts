/**
 * Exclusion lists in: gbifIDs other datasets already hold, from their
 * multimedia files (plain, gzipped or a GBIF zip, read as ingest reads them)
 * or from plain lists of gbifIDs, one per line. Streams each file once and
 * hands the ledger a sorted batch of up to a million IDs at a time, so memory
 * stays flat whatever the size of the lists: the exclusion lives in the
 * ledger, not in a JavaScript Set.
 *
 * What a file is, is told by its first line: a multimedia header (a tab, and a
 * gbifID column), a lone "gbifID" heading a list, or a gbifID.
 */
import { InputError } from '../errors.js';
import { mapColumns } from '../input/columns.js';
import { LineTooLongError, readLineChunks } from '../input/lines.js';
import { describeReadFailure, openMultimedia } from '../input/open-source.js';
import { parseGbifId } from '../input/rows.js';
import type { Ledger } from '../ledger/ledger.js';

export interface ExcludeSummary {
  readonly files: readonly string[];
  /** gbifIDs read (a multimedia file's rows, a list's lines). */
  readonly read: number;
  /** gbifIDs new to the ledger's exclusion list. */
  readonly listed: number;
  /** Pending or failed gbifIDs of the ledger taken out of the queue. */
  readonly excluded: number;
  /** Multimedia rows whose gbifID is not a positive integer (as ingest skips them). */
  readonly skipped: number;
  readonly interrupted: boolean;
  readonly elapsedMs: number;
}

export interface ExcludeOptions {
  readonly signal?: AbortSignal;
  readonly onProgress?: (p: { file: string; bytesRead: number; totalBytes: number; read: number }) => void;
  /** IDs per ledger transaction. */
  readonly batch?: number;
}

const DEFAULT_BATCH = 1 << 20;

/** Sorts a batch in place and drops repeats: the ledger takes IDs in key order. */
export function sortedUnique(ids: Float64Array): Float64Array {
  ids.sort();
  let n = 0;
  for (let i = 0; i < ids.length; i++) if (n === 0 || ids[i] !== ids[n - 1]) ids[n++] = ids[i] as number;
  return ids.subarray(0, n);
}

/** How to read each line: its gbifID field (a multimedia file), or the whole line (a list). */
type LineReader = { kind: 'multimedia'; column: number } | { kind: 'list' };

function readerFor(file: string, first: string): { reader: LineReader; header: boolean } {
  if (first.includes('\t')) {
    const columns = mapColumns(first.split('\t'));
    if ('problem' in columns) throw new InputError(file, columns.problem, 'bad_header');
    return { reader: { kind: 'multimedia', column: columns.gbifId }, header: true };
  }
  if (/^\s*gbifid\s*$/i.test(first)) return { reader: { kind: 'list' }, header: true };
  if (parseGbifId(first) !== undefined) return { reader: { kind: 'list' }, header: false };
  throw new InputError(file, `line 1 (${JSON.stringify(first.slice(0, 40))}) is neither a gbifID nor a multimedia header: expected a list of gbifIDs, one per line, or a GBIF multimedia file`, 'bad_header');
}

export async function excludeFiles(files: readonly string[], ledger: Ledger, options: ExcludeOptions = {}): Promise<ExcludeSummary> {
  const started = performance.now();
  const size = options.batch ?? DEFAULT_BATCH;
  const batch = new Float64Array(size);
  let filled = 0;
  const totals = { read: 0, listed: 0, excluded: 0, skipped: 0 };
  let interrupted = false;
  const flush = async () => {
    if (filled === 0) return;
    const tally = await ledger.exclude(sortedUnique(batch.subarray(0, filled)));
    totals.listed += tally.listed;
    totals.excluded += tally.excluded;
    filled = 0;
  };
  for (const file of files) {
    const source = await openMultimedia(file);
    let reader: LineReader | undefined;
    let line = 0;
    try {
      for await (const chunk of readLineChunks(source.stream)) {
        for (const raw of chunk.toString('utf8').split('\n')) {
          line++;
          const text = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
          if (text.trim() === '') continue;
          if (!reader) {
            const found = readerFor(file, text);
            reader = found.reader;
            if (found.header) continue;
          }
          let id: number | undefined;
          if (reader.kind === 'list') {
            id = parseGbifId(text);
            if (id === undefined) throw new InputError(file, `line ${line}: ${JSON.stringify(text.slice(0, 40))} is not a gbifID`, 'bad_input');
          } else {
            id = parseGbifId(text.split('\t', reader.column + 1)[reader.column] ?? '');
            if (id === undefined) {
              totals.skipped++;
              continue;
            }
          }
          batch[filled++] = id;
          totals.read++;
          if (filled === size) await flush();
        }
        options.onProgress?.({ file, bytesRead: source.bytesRead(), totalBytes: source.totalBytes, read: totals.read });
        if (options.signal?.aborted) {
          interrupted = true;
          break;
        }
      }
    } catch (err) {
      if (err instanceof InputError) throw err;
      const problem = err instanceof LineTooLongError ? err.message : describeReadFailure(source, err);
      throw new InputError(file, `${problem} (gbifIDs before line ${line} not yet listed were left out; run again with the complete file)`, 'bad_input', { cause: err });
    } finally {
      source.close();
    }
    if (!reader) throw new InputError(file, 'has no lines: expected a list of gbifIDs or a GBIF multimedia file', 'bad_header');
    if (interrupted) break;
  }
  await flush();
  return { files, ...totals, interrupted, elapsedMs: Math.round(performance.now() - started) };
}
