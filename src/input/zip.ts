/**
 * Reads the multimedia file of a GBIF download zip in place, through yauzl:
 * the archive is never extracted to disk or held in memory, and ZIP64 (every
 * large GBIF download) is handled by yauzl.
 */
import type { Readable } from 'node:stream';
import yauzl, { type Entry, type ZipFile } from 'yauzl';
import { InputError } from '../errors.js';
import { findMultimedia } from './meta-xml.js';

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

function basename(name: string): string {
  return name.slice(name.lastIndexOf('/') + 1).toLowerCase();
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
    const meta = entries.find((e) => basename(e.fileName) === 'meta.xml');
    let entry: Entry | undefined;
    if (meta) {
      const descriptor = findMultimedia(await readSmallEntry(zip, meta));
      if (!descriptor) throw new InputError(file, 'meta.xml declares no GBIF multimedia extension (http://rs.gbif.org/terms/1.0/Multimedia): no images to ingest', 'no_multimedia');
      if (descriptor.fieldsTerminatedBy !== '\t' || descriptor.fieldsEnclosedBy !== '') {
        throw new InputError(file, `${descriptor.location} is not tab-separated without quotes as a GBIF download's is (a publisher's IPT archive?)`, 'not_gbif_download');
      }
      entry = entries.find((e) => e.fileName === descriptor.location) ?? entries.find((e) => basename(e.fileName) === basename(descriptor.location));
      if (!entry) throw new InputError(file, `meta.xml names ${descriptor.location}, which is not in the archive`, 'no_multimedia');
    } else {
      entry = entries.find((e) => basename(e.fileName) === 'multimedia.txt');
      if (!entry) throw new InputError(file, 'archive has neither meta.xml nor multimedia.txt', 'no_multimedia');
    }
    const stream = await zip.openReadStreamPromise(entry);
    return { entryName: entry.fileName, uncompressedSize: entry.uncompressedSize, stream, close: () => zip.close() };
  } catch (err) {
    zip.close();
    if (err instanceof InputError) throw err;
    throw new InputError(file, `damaged zip archive (${(err as Error).message})`, 'bad_zip', { cause: err });
  }
}
