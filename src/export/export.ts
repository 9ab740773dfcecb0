/**
 * `export`: one line per image with the attribution its licence needs,
 * streamed from the ledger (constant memory at 50M images) as CSV (RFC 4180)
 * or JSON lines. To a file it is written to a temporary name, fsynced and
 * renamed, so a reader never sees half an export.
 */
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import type { Writable } from 'node:stream';
import { namingPath } from '../errors.js';
import { LabelCursor, type ExportedImage, type ItemState, type Ledger } from '../ledger/ledger.js';
import { finalPath } from '../store/layout.js';

export const EXPORT_COLUMNS = [
  'gbifID',
  'NN',
  'imageIndex',
  'iiifCanvas',
  'path',
  'url',
  'finalUrl',
  'license',
  'rightsHolder',
  'creator',
  'publisher',
  'width',
  'height',
  'bytes',
  'sha256',
  'state',
  'error',
] as const;

/** One image as the export's values, in EXPORT_COLUMNS order. */
export function record(image: ExportedImage): (string | number | null)[] {
  // The path is relative to --out, so an export stays true wherever the tree is moved.
  const path = image.state === 'done' ? finalPath('', image.gbifId, image.fileIndex) : null;
  return [
    image.gbifId,
    image.fileIndex,
    image.imageIndex,
    image.partIndex,
    path,
    image.url,
    image.finalUrl,
    image.license,
    image.rightsHolder,
    image.creator,
    image.publisher,
    image.width,
    image.height,
    image.bytes,
    image.sha256,
    image.state,
    image.errorCode,
  ];
}

function csvField(value: string | number | null): string {
  if (value === null) return '';
  const text = String(value);
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

function line(format: 'csv' | 'jsonl', columns: readonly string[], values: (string | number | null)[]): string {
  if (format === 'csv') return values.map(csvField).join(',') + '\r\n';
  return JSON.stringify(Object.fromEntries(columns.map((c, i) => [c, values[i]]))) + '\n';
}

/**
 * The ledger's images as the export's rows: EXPORT_COLUMNS, then one column
 * per label field (`herbdl labels`; a field named as an export column, such
 * as license, is `occurrence_license`), null where a gbifID has no labels.
 */
export async function exportRows(ledger: Ledger, state: ItemState | 'all'): Promise<{ columns: readonly string[]; rows: AsyncGenerator<(string | number | null)[]>; close: () => Promise<void> }> {
  const labels = await LabelCursor.open(ledger);
  const taken = new Set<string>(EXPORT_COLUMNS.map((c) => c.toLowerCase()));
  const labelColumns = (labels?.fields ?? []).map((f) => (taken.has(f.toLowerCase()) ? `occurrence_${f}` : f));
  async function* rows(): AsyncGenerator<(string | number | null)[]> {
    for await (const image of ledger.exportImages(state)) {
      const values = record(image);
      if (labels) {
        const found = await labels.of(image.gbifId);
        for (let i = 0; i < labelColumns.length; i++) values.push(found?.[i] ?? null);
      }
      yield values;
    }
  }
  // Closed by the caller however the export ends: the labels' pages are let go.
  return { columns: [...EXPORT_COLUMNS, ...labelColumns], rows: rows(), close: async () => labels?.close() };
}

async function writeAll(ledger: Ledger, state: ItemState | 'all', format: 'csv' | 'jsonl', out: Writable): Promise<number> {
  let count = 0;
  const { columns, rows, close } = await exportRows(ledger, state);
  try {
    let chunk = format === 'csv' ? columns.join(',') + '\r\n' : '';
    for await (const values of rows) {
      chunk += line(format, columns, values);
      count++;
      if (chunk.length > 1 << 16) {
        if (!out.write(chunk)) await once(out, 'drain');
        chunk = '';
      }
    }
    out.write(chunk);
    return count;
  } finally {
    await close();
  }
}

export async function exportImages(ledger: Ledger, options: { state: ItemState | 'all'; format: 'csv' | 'jsonl'; outFile: string }): Promise<number> {
  if (!options.outFile) {
    try {
      return await writeAll(ledger, options.state, options.format, process.stdout);
    } catch (err) {
      // A reader that went away (`herbdl export | head`) ends the export, as it ends any filter; it had said EPIPE was the ledger's server going away.
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EPIPE' || code === 'ERR_STREAM_DESTROYED') return 0;
      throw err;
    }
  }
  const temp = `${options.outFile}.${process.pid}.part`;
  const file = createWriteStream(temp, { flush: true });
  try {
    const count = await writeAll(ledger, options.state, options.format, file);
    file.end();
    await once(file, 'close');
    await rename(temp, options.outFile);
    return count;
  } catch (err) {
    file.destroy();
    await rm(temp, { force: true });
    throw namingPath(err, options.outFile);
  }
}
