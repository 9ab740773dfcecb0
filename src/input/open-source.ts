/**
 * Opens a file of a GBIF download (its multimedia.txt for ingest, its
 * occurrence file for labels) as a stream of text bytes, whatever it came
 * as: the plain file, the same gzipped, a whole download zip, or the folder
 * it was unzipped into. The kind is told by the first bytes, not the name.
 */
import { createReadStream } from 'node:fs';
import { open, readdir, readFile, stat, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { InputError } from '../errors.js';
import { chooseDownloadFile, MULTIMEDIA, type DownloadPart } from './meta-xml.js';
import { inflated, INFLATED_PIECE } from './inflate.js';
import { openZipEntry } from './zip.js';

export type SourceKind = 'text' | 'gzip' | 'zip';

export interface DownloadSource {
  readonly file: string;
  readonly kind: SourceKind;
  /**
   * Decoded text, chunk by chunk. A chunk may be overwritten once
   * the next is asked for (a plain file is read into one buffer, again and
   * again): keep a copy of what must last longer.
   */
  readonly chunks: AsyncIterable<Buffer>;
  /** Progress is counted in these units: file bytes for text and gzip, entry bytes for zip. */
  readonly totalBytes: number;
  readonly bytesRead: () => number;
  readonly close: () => void;
}

const READ_CHUNK = 1 << 20;

async function sniff(file: string): Promise<Buffer> {
  const handle = await open(file, 'r');
  try {
    const buf = Buffer.alloc(4);
    const { bytesRead } = await handle.read(buf, 0, 4, 0);
    return buf.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

/**
 * A plain file, read into one buffer again and again. A new buffer for each
 * megabyte read lived on across the ledger's awaits until V8 moved it to
 * its old generation, where only a full collection frees it: an ingest of
 * 2M rows into SQLite peaked 10 to 20 MB higher for them.
 */
function reusedReads(handle: FileHandle): { chunks: AsyncIterable<Buffer>; bytesRead: () => number } {
  let bytes = 0;
  const buf = Buffer.allocUnsafeSlow(READ_CHUNK);
  async function* chunks(): AsyncGenerator<Buffer> {
    for (;;) {
      const { bytesRead } = await handle.read(buf, 0, buf.length, bytes);
      if (bytesRead === 0) return;
      bytes += bytesRead;
      yield buf.subarray(0, bytesRead);
    }
  }
  return { chunks: chunks(), bytesRead: () => bytes };
}

/** Opens `file` as multimedia text (or as another `part` of a download: its occurrence file, for labels). */
export async function openDownloadFile(file: string, part: DownloadPart = MULTIMEDIA): Promise<DownloadSource> {
  let info;
  try {
    info = await stat(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new InputError(file, code === 'ENOENT' ? 'no such file' : `cannot read (${code ?? (err as Error).message})`, 'unreadable');
  }
  if (info.isDirectory()) return openDownloadFile(await folderFile(file, part), part);
  if (!info.isFile()) throw new InputError(file, 'is not a regular file', 'unreadable');
  if (info.size === 0) throw new InputError(file, `is empty (0 bytes): expected a ${part === MULTIMEDIA ? 'multimedia' : 'header'} line`, 'empty');

  let magic: Buffer;
  try {
    magic = await sniff(file);
  } catch (err) {
    throw new InputError(file, `cannot read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, 'unreadable');
  }

  if (magic[0] === 0x50 && magic[1] === 0x4b && (magic[2] === 3 || magic[2] === 5)) {
    const zip = await openZipEntry(file, part);
    return { file, kind: 'zip', chunks: zip.chunks, totalBytes: zip.uncompressedSize, bytesRead: zip.bytesRead, close: zip.close };
  }

  if (magic[0] === 0x1f && magic[1] === 0x8b) {
    const raw = createReadStream(file, { highWaterMark: INFLATED_PIECE });
    const { pieces, stop } = inflated(raw, 'gzip');
    return { file, kind: 'gzip', chunks: pieces, totalBytes: info.size, bytesRead: () => raw.bytesRead, close: stop };
  }
  let handle: FileHandle;
  try {
    handle = await open(file, 'r');
  } catch (err) {
    throw new InputError(file, `cannot read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, 'unreadable');
  }
  const { chunks, bytesRead } = reusedReads(handle);
  return { file, kind: 'text', chunks, totalBytes: info.size, bytesRead, close: () => void handle.close().catch(() => {}) };
}

/**
 * The file `part` names of a GBIF download unzipped into `folder` (users
 * unzip them), found as in the zip: through meta.xml, or by name. A file
 * kept gzipped to save room (multimedia.txt.gz) stands for the one it holds.
 */
async function folderFile(folder: string, part: DownloadPart): Promise<string> {
  const unreadable = (err: unknown, what: string) => new InputError(folder, `cannot read ${what} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, 'unreadable');
  let files: string[];
  try {
    files = (await readdir(folder, { withFileTypes: true })).filter((e) => !e.isDirectory()).map((e) => e.name);
  } catch (err) {
    throw unreadable(err, 'the folder');
  }
  const present = new Set(files);
  const gzipped = (f: string) => f.endsWith('.gz') && !f.endsWith('.xml.gz') && !present.has(f.slice(0, -3));
  const named = new Map(files.map((f) => [gzipped(f) ? f.slice(0, -3) : f, f]));
  const real = (name: string) => join(folder, named.get(name) as string);
  const name = await chooseDownloadFile(folder, 'folder', [...named.keys()], (meta) => readFile(real(meta), 'utf8').catch((err: unknown) => Promise.reject(unreadable(err, meta))), part);
  return real(name);
}

/** A one-line description of a stream failure, for an InputError. */
export function describeReadFailure(source: DownloadSource, err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  if (source.kind === 'gzip' && (e.code === 'Z_BUF_ERROR' || /unexpected end/i.test(e.message))) return 'truncated gzip stream';
  if (source.kind === 'gzip' && e.code?.startsWith('Z_')) return `damaged gzip stream (${e.message})`;
  if (source.kind === 'zip') return `damaged zip entry (${e.message}); truncated download?`;
  return `read failed (${e.code ?? e.message})`;
}
