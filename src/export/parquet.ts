/**
 * `export --format parquet`: the export's columns with their types (64-bit
 * integers for gbifID and bytes, 32-bit for NNs and sizes, strings, and nulls
 * where a value is missing), streamed from the ledger a row group at a time,
 * so memory stays flat at 50M images. Written by hyparquet-writer (pure
 * JavaScript, no native code, no dependency beyond its reader's types; it
 * runs on Node 20 and writes row groups incrementally), to a temporary name,
 * fsynced and renamed.
 */
import { rename, rm } from 'node:fs/promises';
import { fileWriter, ParquetWriter, schemaFromColumnData } from 'hyparquet-writer';
import type { ItemState, Ledger } from '../ledger/ledger.js';
import { namingPath } from '../errors.js';
import { fsyncPath } from '../store/durable.js';
import { exportRows, type EXPORT_COLUMNS } from './export.js';

type Column = (typeof EXPORT_COLUMNS)[number];

const TYPES: Record<Column, 'INT64' | 'INT32' | 'STRING'> = {
  gbifID: 'INT64',
  NN: 'INT32',
  imageIndex: 'INT32',
  iiifCanvas: 'INT32',
  path: 'STRING',
  url: 'STRING',
  finalUrl: 'STRING',
  license: 'STRING',
  rightsHolder: 'STRING',
  creator: 'STRING',
  publisher: 'STRING',
  width: 'INT32',
  height: 'INT32',
  bytes: 'INT64',
  sha256: 'STRING',
  state: 'STRING',
  error: 'STRING',
};

/** Columns every image has a value for. */
const REQUIRED = new Set<Column>(['gbifID', 'NN', 'imageIndex', 'url', 'license', 'rightsHolder', 'creator', 'publisher', 'state']);

/** Rows per row group: large enough for good compression, small enough to keep memory flat (about 20 MB of values). */
const ROW_GROUP = 50_000;

export async function exportParquet(ledger: Ledger, state: ItemState | 'all', outFile: string, version: string): Promise<number> {
  const temp = `${outFile}.${process.pid}.part`;
  const { columns: names, rows: images, close } = await exportRows(ledger, state);
  // Label columns (herbdl labels) are strings, null where a gbifID has none.
  const typeOf = (name: string) => TYPES[name as Column] ?? 'STRING';
  const empty = () => names.map((): unknown[] => []);
  const schema = schemaFromColumnData({
    columnData: names.map((name) => ({ name, data: [], type: typeOf(name), nullable: !REQUIRED.has(name as Column) })),
  });
  try {
    const writer = new ParquetWriter({ writer: fileWriter(temp), schema, createdBy: `herbdl ${version}` });
    let columns = empty();
    let rows = 0;
    let count = 0;
    const flush = async () => {
      if (rows === 0) return;
      await writer.write({ columnData: names.map((name, i) => ({ name, data: columns[i] as unknown[] })), rowGroupSize: ROW_GROUP });
      columns = empty();
      rows = 0;
    };
    for await (const values of images) {
      values.forEach((value, i) => {
        // 64-bit columns take BigInts; a null stays null.
        (columns[i] as unknown[]).push(typeOf(names[i] as string) === 'INT64' && value !== null ? BigInt(value) : value);
      });
      rows++;
      count++;
      if (rows === ROW_GROUP) await flush();
    }
    await flush();
    await writer.finish();
    await fsyncPath(temp, 'r+');
    await rename(temp, outFile);
    return count;
  } catch (err) {
    await rm(temp, { force: true });
    throw namingPath(err, outFile);
  } finally {
    await close();
  }
}
