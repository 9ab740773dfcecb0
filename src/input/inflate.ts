/**
 * Compressed input (a gzipped multimedia file, a zip's deflated entry),
 * inflated by herbdl in pieces of one size.
 */
import type { Readable } from 'node:stream';
import { createGunzip, createInflateRaw } from 'node:zlib';

/**
 * The size of the inflated pieces. zlib's default 16 KiB made 40,000
 * callbacks per 615 MB on the thread that writes the ledger (1.3 s of it, in
 * yauzl's pipeline); pieces of a megabyte lived through the ledger's awaits
 * into V8's old generation (2M gzipped rows peaked at 189 to 216 MB).
 */
export const INFLATED_PIECE = 64 * 1024;

/**
 * `raw`'s bytes inflated (`gzip`, or raw `deflate` as in a zip), in
 * INFLATED_PIECE pieces; a failure to read `raw` ends the pieces with it.
 * `stop` ends both.
 */
export function inflated(raw: Readable, format: 'gzip' | 'deflate'): { pieces: Readable; stop: () => void } {
  const inflate = format === 'gzip' ? createGunzip({ chunkSize: INFLATED_PIECE }) : createInflateRaw({ chunkSize: INFLATED_PIECE });
  raw.on('error', (err) => inflate.destroy(err));
  raw.pipe(inflate);
  return {
    pieces: inflate,
    stop: () => {
      raw.destroy();
      inflate.destroy();
    },
  };
}
