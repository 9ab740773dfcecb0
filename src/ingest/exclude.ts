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
import { describeReadFailure, openDownloadFile } from '../input/open-source.js';
import { parseGbifId } from '../input/rows.js';
import type { Ledger } from '../ledger/ledger.js';
import { SortThread } from './sort-thread.js';

interface ReadSummary {
  readonly files: readonly string[];
  /** gbifIDs read (a multimedia file's rows, a list's lines). */
  readonly read: number;
  /** Multimedia rows whose gbifID is not a positive integer (as ingest skips them). */
  readonly skipped: number;
  readonly interrupted: boolean;
  readonly elapsedMs: number;
}

export type ExcludeSummary = ReadSummary &
  (
    | {
        readonly undo: false;
        /** gbifIDs new to the ledger's exclusion list. */
        readonly listed: number;
        /** Pending or failed gbifIDs of the ledger taken out of the queue. */
        readonly excluded: number;
      }
    | {
        readonly undo: true;
        /** gbifIDs taken off the exclusion list. */
        readonly unlisted: number;
        /** Excluded gbifIDs of the ledger put back in the queue. */
        readonly restored: number;
      }
  );

export interface ExcludeOptions {
  readonly signal?: AbortSignal;
  readonly onProgress?: (p: { file: string; bytesRead: number; totalBytes: number; read: number }) => void;
  /** IDs sorted in memory at a time (a run); more are merged from temporary files. */
  readonly batch?: number;
  /** Take the IDs off the list instead, putting the excluded ones back in the queue (`exclude --undo`). */
  readonly undo?: boolean;
}

const DEFAULT_BATCH = 1 << 20;
/** IDs per ledger transaction, once merged. */
const LEDGER_BLOCK = 1 << 18;

/** How to read each line: its gbifID field (a multimedia file), or the whole line (a list). */
type LineReader = { kind: 'multimedia'; column: number } | { kind: 'list' };

function readerFor(file: string, first: string): { reader: LineReader; header: boolean } {
  // A gbifID with white space around it (a tab too) is a list's first line, never a header.
  if (parseGbifId(first) !== undefined) return { reader: { kind: 'list' }, header: false };
  if (first.includes('\t')) {
    const columns = mapColumns(first.split('\t'));
    if ('problem' in columns) throw new InputError(file, columns.problem, 'bad_header');
    return { reader: { kind: 'multimedia', column: columns.gbifId }, header: true };
  }
  if (/^\s*gbifid\s*$/i.test(first)) return { reader: { kind: 'list' }, header: true };
  throw new InputError(file, `line 1 (${JSON.stringify(first.slice(0, 40))}) is neither a gbifID nor a multimedia header: expected a list of gbifIDs, one per line, or a GBIF multimedia file`, 'bad_header');
}

const NEWLINE = 10;
const MAX_DIGITS = 16; // 2^53 has 16 digits; parseGbifId has the last word on the value

/**
 * Reads the lines of a list chunk from `pos` into `batch` (from `filled`)
 * until the chunk ends or the batch is full. The same rule as parseGbifId
 * (decimal digits, white space around them, a positive safe integer), without
 * a string per line. Returns where it stopped, or the first bad line.
 */
export function readList(chunk: Buffer, pos: number, batch: Float64Array, filled: number, line: number): { pos: number; filled: number; line: number; bad?: string } {
  while (pos < chunk.length && filled < batch.length) {
    const start = pos;
    line++;
    // The usual line, digits and its newline, read in one pass.
    let value = 0;
    let i = pos;
    let c = 0;
    while (i < chunk.length && (c = chunk[i] as number) >= 48 && c <= 57) {
      value = value * 10 + (c - 48);
      i++;
    }
    if (i > pos && i - pos <= MAX_DIGITS && (i === chunk.length || c === NEWLINE) && value > 0 && value <= Number.MAX_SAFE_INTEGER) {
      batch[filled++] = value;
      pos = i + 1;
      continue;
    }
    // Anything else (white space, a CR, an empty line, a bad one) by the whole rule.
    let end = chunk.indexOf(NEWLINE, pos);
    if (end < 0) end = chunk.length;
    pos = end + 1;
    let a = start;
    let b = end;
    while (a < b && (chunk[a] === 32 || chunk[a] === 9)) a++;
    while (b > a && (chunk[b - 1] === 32 || chunk[b - 1] === 9 || chunk[b - 1] === 13)) b--;
    if (a === b) continue;
    value = 0;
    let ok = b - a <= MAX_DIGITS;
    for (let i = a; ok && i < b; i++) {
      const d = (chunk[i] as number) - 48;
      if (d < 0 || d > 9) ok = false;
      else value = value * 10 + d;
    }
    if (!ok || value <= 0 || !Number.isSafeInteger(value)) {
      const text = chunk.toString('utf8', start, end).replace(/\r$/, '');
      const id = parseGbifId(text);
      if (id === undefined) return { pos, filled, line, bad: text };
      value = id;
    }
    batch[filled++] = value;
  }
  return { pos, filled, line };
}

const TAB = 9;
const CR = 13;

/**
 * Reads the gbifIDs of a multimedia chunk's rows (field `column`) from `pos`
 * into `batch` until the chunk ends or the batch is full, as readList does a
 * list: in place, no string per row (splitting each row into strings left a
 * heap of garbage that, beside the ledger's work after reading, took a
 * 2M-row export's exclusion over 200 MB). A row whose field is not a gbifID
 * by parseGbifId's rule is counted in `skipped`; a blank row is passed over.
 */
export function readColumn(chunk: Buffer, pos: number, batch: Float64Array, filled: number, column: number): { pos: number; filled: number; skipped: number } {
  let skipped = 0;
  while (pos < chunk.length && filled < batch.length) {
    let end = chunk.indexOf(NEWLINE, pos);
    if (end < 0) end = chunk.length;
    const start = pos;
    pos = end + 1;
    // The field: past `column` tabs, up to the next tab or the row's end.
    let a = start;
    for (let k = 0; k < column && a >= 0; k++) {
      const tab = chunk.indexOf(TAB, a);
      a = tab < 0 || tab >= end ? -1 : tab + 1;
    }
    let b = -1;
    if (a >= 0) {
      b = chunk.indexOf(TAB, a);
      if (b < 0 || b > end) b = end;
      if (b === end && b > a && chunk[b - 1] === CR) b--;
    }
    let value = 0;
    let ok = a >= 0 && b > a && b - a <= MAX_DIGITS;
    for (let i = a; ok && i < b; i++) {
      const d = (chunk[i] as number) - 48;
      if (d < 0 || d > 9) ok = false;
      else value = value * 10 + d;
    }
    if (!ok || value <= 0 || !Number.isSafeInteger(value)) {
      // Anything else (white space, too many digits, no such field) by the whole rule.
      const id = a >= 0 ? parseGbifId(chunk.toString('utf8', a, b)) : undefined;
      if (id === undefined) {
        if (chunk.toString('utf8', start, end).trim() !== '') skipped++;
        continue;
      }
      value = id;
    }
    batch[filled++] = value;
  }
  return { pos, filled, skipped };
}

export async function excludeFiles(files: readonly string[], ledger: Ledger, options: ExcludeOptions = {}): Promise<ExcludeSummary> {
  const started = performance.now();
  const size = options.batch ?? DEFAULT_BATCH;
  const totals = { read: 0, skipped: 0 };
  const changed = { listed: 0, excluded: 0, unlisted: 0, restored: 0 };
  let interrupted = false;
  // Full batches are sorted and set aside on another thread; the ledger gets the whole list in key order at the end (sorted-runs.ts).
  const runs = new SortThread(size);
  let filled = 0;
  /** Hands a full batch over and returns an empty one. */
  const spill = (full: Float64Array): Promise<Float64Array> => {
    runs.spill(full);
    filled = 0;
    return runs.take();
  };
  try {
    let batch = await runs.take();
    for (const file of files) {
      const source = await openDownloadFile(file);
      let reader: LineReader | undefined;
      let line = 0;
      try {
        for await (const chunk of readLineChunks(source.chunks, { movable: false })) {
          if (reader) {
            // The usual case at scale (tens of millions of lines): read in place, byte by byte.
            for (let pos = 0; pos < chunk.length; ) {
              const at = reader.kind === 'list' ? { skipped: 0, ...readList(chunk, pos, batch, filled, line) } : { line, bad: undefined, ...readColumn(chunk, pos, batch, filled, reader.column) };
              totals.read += at.filled - filled;
              totals.skipped += at.skipped;
              filled = at.filled;
              line = at.line;
              pos = at.pos;
              if (at.bad !== undefined) throw new InputError(file, `line ${line}: ${JSON.stringify(at.bad.slice(0, 40))} is not a gbifID`, 'bad_input');
              if (filled === size) batch = await spill(batch);
            }
            options.onProgress?.({ file, bytesRead: source.bytesRead(), totalBytes: source.totalBytes, read: totals.read });
            if (options.signal?.aborted) {
              interrupted = true;
              break;
            }
            continue;
          }
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
            if (filled === size) batch = await spill(batch);
          }
          options.onProgress?.({ file, bytesRead: source.bytesRead(), totalBytes: source.totalBytes, read: totals.read });
          if (options.signal?.aborted) {
            interrupted = true;
            break;
          }
        }
      } catch (err) {
        if (err instanceof InputError || runs.owns(err)) throw err;
        const problem = err instanceof LineTooLongError ? err.message : describeReadFailure(source, err);
        throw new InputError(file, `${problem} (nothing was listed, as the list goes to the ledger whole, in order, once read; run again with the complete file)`, 'bad_input', { cause: err });
      } finally {
        source.close();
      }
      if (!reader) throw new InputError(file, 'has no lines: expected a list of gbifIDs or a GBIF multimedia file', 'bad_header');
      if (interrupted) break;
    }
    // Interrupted too: what was read is listed, as before the interruption.
    for await (const block of runs.merged(batch.subarray(0, filled), LEDGER_BLOCK)) {
      if (options.undo) {
        const tally = await ledger.unexclude(block);
        changed.unlisted += tally.unlisted;
        changed.restored += tally.restored;
      } else {
        const tally = await ledger.exclude(block);
        changed.listed += tally.listed;
        changed.excluded += tally.excluded;
      }
    }
  } finally {
    await runs.close();
  }
  const read = { files, ...totals, interrupted, elapsedMs: Math.round(performance.now() - started) };
  return options.undo ? { ...read, undo: true, unlisted: changed.unlisted, restored: changed.restored } : { ...read, undo: false, listed: changed.listed, excluded: changed.excluded };
}
