/**
 * Reads a file of a GBIF download zip (its multimedia, or its occurrences) in place, through yauzl:
 * the archive is never extracted to disk or held in memory, and ZIP64 (every
 * large GBIF download) is handled by yauzl.
 */
import type { Readable } from 'node:stream';
import yauzl, { type Entry, type ZipFile } from 'yauzl';
import { InputError } from '../errors.js';
import { inflated } from './inflate.js';
import { chooseDownloadFile, MULTIMEDIA, type DownloadPart } from './meta-xml.js';

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

export interface ZipEntryBytes {
  readonly entryName: string;
  readonly uncompressedSize: number;
  /** The entry's bytes, inflated; fails if they are not the size the archive declares. */
  readonly chunks: AsyncIterable<Buffer>;
  /** Bytes of the entry handed on so far. */
  readonly bytesRead: () => number;
  readonly close: () => void;
}

/**
 * The entry's stored bytes, inflated here (yauzl is asked for them raw: it
 * inflates in zlib's default 16 KiB pieces, through a stream that counts
 * them, and an ingest from the zip took half as long again as from the plain
 * file), and held to the entry's declared size as yauzl would (a mismatch is
 * a damaged entry: counted past it, or short at the end). The entry is
 * stored (method 0) or deflated (8): openZipEntry refuses the others.
 */
function entryBytes(raw: Readable, entry: Entry): { chunks: AsyncIterable<Buffer>; bytesRead: () => number; stop: () => void } {
  let bytes = 0;
  const { pieces: source, stop } = entry.compressionMethod === 8 ? inflated(raw, 'deflate') : { pieces: raw, stop: () => raw.destroy() };
  async function* chunks(): AsyncGenerator<Buffer> {
    for await (const piece of source as AsyncIterable<Buffer>) {
      bytes += piece.length;
      if (bytes > entry.uncompressedSize) throw new Error(`too many bytes in the entry: more than the ${entry.uncompressedSize} it declares`);
      yield piece;
    }
    if (bytes < entry.uncompressedSize) throw new Error(`the entry ended at ${bytes} of the ${entry.uncompressedSize} bytes it declares`);
  }
  return { chunks: chunks(), bytesRead: () => bytes, stop };
}

/** Opens the multimedia entry (or another `part`) named by meta.xml (or, lacking one, multimedia.txt). Throws InputError. */
export async function openZipEntry(file: string, part: DownloadPart = MULTIMEDIA): Promise<ZipEntryBytes> {
  let zip: ZipFile;
  try {
    zip = await yauzl.openPromise(file, { lazyEntries: true, autoClose: false });
  } catch (err) {
    throw new InputError(file, `not a readable zip archive (${(err as Error).message}); truncated download?`, 'bad_zip', { cause: err });
  }
  try {
    const entries = await listEntries(zip);
    const named = (name: string) => entries.find((e) => e.fileName === name) as Entry;
    const entry = named(await chooseDownloadFile(file, 'archive', entries.map((e) => e.fileName), (meta) => readSmallEntry(zip, named(meta)), part));
    if (entry.isEncrypted()) throw new InputError(file, `${entry.fileName} is encrypted: not a GBIF download`, 'bad_zip');
    if (entry.compressionMethod !== 0 && entry.compressionMethod !== 8) throw new InputError(file, `${entry.fileName} is compressed with method ${entry.compressionMethod}, which herbdl cannot read (GBIF downloads use deflate)`, 'bad_zip');
    const read = entryBytes(await zip.openReadStreamPromise(entry, { decodeFileData: false }), entry);
    return {
      entryName: entry.fileName,
      uncompressedSize: entry.uncompressedSize,
      chunks: read.chunks,
      bytesRead: read.bytesRead,
      close: () => {
        read.stop();
        zip.close();
      },
    };
  } catch (err) {
    zip.close();
    if (err instanceof InputError) throw err;
    throw new InputError(file, `damaged zip archive (${(err as Error).message})`, 'bad_zip', { cause: err });
  }
}
