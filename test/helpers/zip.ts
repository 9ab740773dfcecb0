/** Zip archives written for ingest and exclude tests, as GBIF delivers its downloads (yazl). */
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import yazl from 'yazl';

export interface ZipOptions {
  /** Every entry and the archive's end record in ZIP64 form. */
  readonly zip64?: boolean;
  /** Entries kept as they are (method 0), not deflated. */
  readonly stored?: readonly string[];
}

/** Writes `entries` (name -> content) as a zip at `path`; returns `path`. */
export async function writeZip(path: string, entries: Record<string, string | Buffer>, options: ZipOptions = {}): Promise<string> {
  const zip = new yazl.ZipFile();
  for (const [name, content] of Object.entries(entries)) {
    zip.addBuffer(Buffer.isBuffer(content) ? content : Buffer.from(content), name, { forceZip64Format: options.zip64 ?? false, compress: !options.stored?.includes(name) });
  }
  zip.end({ forceZip64Format: options.zip64 ?? false, comment: '' });
  const out = createWriteStream(path);
  zip.outputStream.pipe(out);
  await once(out, 'close');
  return path;
}
