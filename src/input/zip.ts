/**
 * Reads the multimedia file of a GBIF download zip in place, through yauzl:
 * the archive is never extracted to disk or held in memory, and ZIP64 (every
 * large GBIF download) is handled by yauzl.
 */
import type { Readable } from 'node:stream';
import yauzl, { type Entry, type ZipFile } from 'yauzl';
import { InputError } from '../errors.js';
import { chooseMultimedia } from './meta-xml.js';

const MAX_META_XML_BYTES = 4 * 1024 * 1024;

async function listEntries(zip: ZipFile): Promise<Entry[]> {
  return new Promise((resolve, reject) => {
    const entries: Entry[] = [];
    zip.on('entry', (entry: Entry) => {
      entries.push(entry);
      zip.readEntry();
    });
    zip.once('end', () => resolve(entries));
    zip.once('error', reject);
    zip.readEntry();
  });
}

async function readSmallEntry(zip: ZipFile, entry: Entry): Promise<string> {
  const stream = await zip.openReadStreamPromise(entry);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_META_XML_BYTES) throw new Error(`${entry.fileName} is larger than ${MAX_META_XML_BYTES} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

export interface ZipMultimedia {
  readonly entryName: string;
  readonly uncompressedSize: number;
  readonly stream: Readable;
  readonly close: () => void;
}

/** Opens the multimedia entry named by meta.xml (or, lacking one, multimedia.txt). Throws InputError. */
export async function openZipMultimedia(file: string): Promise<ZipMultimedia> {
  let zip: ZipFile;
  try {
    zip = await yauzl.openPromise(file, { lazyEntries: true, autoClose: false });
  } catch (err) {
    throw new InputError(file, `not a readable zip archive (${(err as Error).message}); truncated download?`, 'bad_zip', { cause: err });
  }
  try {
    const entries = await listEntries(zip);
    const named = (name: string) => entries.find((e) => e.fileName === name) as Entry;
    const entry = named(await chooseMultimedia(file, 'archive', entries.map((e) => e.fileName), (meta) => readSmallEntry(zip, named(meta))));
    const stream = await zip.openReadStreamPromise(entry);
    return { entryName: entry.fileName, uncompressedSize: entry.uncompressedSize, stream, close: () => zip.close() };
  } catch (err) {
    zip.close();
    if (err instanceof InputError) throw err;
    throw new InputError(file, `damaged zip archive (${(err as Error).message})`, 'bad_zip', { cause: err });
  }
}
