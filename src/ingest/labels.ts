/**
 * `herbdl labels`: chosen fields of a GBIF download's occurrence file
 * (scientificName, family, taxonKey, ...) into the ledger, per gbifID, for
 * pack and export to hand to training beside each image. The file is found
 * as ingest finds multimedia (a download zip, the folder it was unzipped
 * into, occurrence.txt itself, gzipped or not), read as a stream, and the
 * load replaces the ledger's labels only when it has read every file whole
 * (ledger/labels.ts): stopped or failed, it leaves the labels as they were.
 */
import { HerbdlError, InputError } from '../errors.js';
import type { LabelRow, Ledger } from '../ledger/ledger.js';
import { OCCURRENCE } from '../input/meta-xml.js';
import { readLineChunks, LineTooLongError } from '../input/lines.js';
import { describeReadFailure, openDownloadFile, type DownloadSource } from '../input/open-source.js';
import { parseGbifId } from '../input/rows.js';
import { lineEnd, occurrenceColumns, readOccurrenceRow, type OccurrenceColumns } from './occurrence-rows.js';

/** Rows per transaction of the load. */
const BATCH = 20_000;

export interface LabelOptions {
  readonly fields: readonly string[];
  /** Whether `fields` is the default set: then those a file lacks are left out, not refused. */
  readonly defaultFields?: boolean;
  readonly signal?: AbortSignal;
  readonly onProgress?: (p: { file: string; bytesRead: number; totalBytes: number; rows: number }) => void;
}

export interface LabelSummary {
  readonly files: readonly string[];
  /** The fields kept, as the files' headers spell them. */
  readonly fields: readonly string[];
  /** Rows read with a gbifID, and rows skipped (no gbifID, or not as many columns as the header). */
  readonly rows: number;
  readonly skipped: number;
  /** gbifIDs of the ledger that have labels now (0 if interrupted: the labels before are kept). */
  readonly labelled: number;
  readonly interrupted: boolean;
  readonly elapsedMs: number;
}

export async function loadLabels(files: readonly string[], ledger: Ledger, options: LabelOptions): Promise<LabelSummary> {
  const started = performance.now();
  let rows = 0;
  let skipped = 0;
  let interrupted = false;
  let names: string[] | undefined;
  let writer: Awaited<ReturnType<Ledger['openLabels']>> | undefined;
  try {
    for (const file of files) {
      const source: DownloadSource = await openDownloadFile(file, OCCURRENCE);
      try {
        let columns: OccurrenceColumns | undefined;
        let batch: LabelRow[] = [];
        try {
          for await (const chunk of readLineChunks(source.chunks, { movable: false })) {
            for (let start = 0; start < chunk.length; ) {
              const end = lineEnd(chunk, start);
              const from = start;
              start = end + 1;
              if (!columns) {
                const header = chunk.toString('utf8', from, end).replace(/\r$/, '');
                if (header.trim() === '') continue;
                columns = occurrenceColumns(source.file, header.split('\t'), names ?? options.fields, !names && options.defaultFields === true);
                if (names && columns.names.join() !== names.join()) throw new InputError(source.file, `its fields are not those of ${files[0]}`, 'bad_input');
                names = columns.names as string[];
                writer ??= await ledger.openLabels(names);
                continue;
              }
              const values = new Array<string>(columns.names.length);
              const idText = readOccurrenceRow(chunk, from, end, columns, values);
              const gbifId = idText === undefined ? undefined : parseGbifId(idText);
              if (gbifId === undefined) {
                // A blank line is nothing; anything else without a gbifID (or cut short) is a row skipped.
                if (end > from && chunk.toString('utf8', from, end).trim() !== '') skipped++;
                continue;
              }
              batch.push({ gbifId, values });
              rows++;
              if (batch.length === BATCH) {
                await writer?.add(batch);
                batch = [];
              }
            }
            options.onProgress?.({ file, bytesRead: source.bytesRead(), totalBytes: source.totalBytes, rows });
            if (options.signal?.aborted) {
              interrupted = true;
              break;
            }
          }
        } catch (err) {
          if (err instanceof HerbdlError) throw err;
          if (err instanceof LineTooLongError) throw new InputError(source.file, `line ${err.lineNumber} is longer than 16 MiB: not a GBIF occurrence file`, 'bad_input');
          throw new InputError(source.file, describeReadFailure(source, err), 'unreadable', { cause: err });
        }
        if (!columns) throw new InputError(source.file, 'has no header line', 'empty');
        await writer?.add(batch);
      } finally {
        source.close();
      }
      if (interrupted) break;
    }
    const labelled = interrupted || !writer ? 0 : (await writer.finish()).labelled;
    return { files, fields: names ?? [], rows, skipped, labelled, interrupted, elapsedMs: Math.round(performance.now() - started) };
  } finally {
    await writer?.close();
  }
}
