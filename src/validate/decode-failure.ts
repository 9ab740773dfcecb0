/**
 * Why a body that starts like an image did not decode, told by its bytes,
 * never by libvips' message. libvips keeps one error buffer per process, so
 * with several decodes at once a message may be another image's: reading it
 * once failed a truncated JPEG as not_image under load. What the bytes say
 * cannot change with what else is running.
 *
 * - truncated: the file stops before its format's end (a JPEG without its
 *   end-of-image marker, a PNG without IEND, a GIF without its trailer, a
 *   WebP shorter than its RIFF header says), even when the Content-Length
 *   matched what was sent;
 * - corrupt: it is whole, but its data does not decode (bytes lost or
 *   changed in the middle);
 * - unsupported_format: a format this libvips cannot read (JPEG 2000, BMP,
 *   HEIC);
 * - not_image: nothing of a known image format.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { PermanentError } from '../errors.js';

const TAIL = 64;

export type ImageKind = 'jpeg' | 'png' | 'gif' | 'webp' | 'tiff' | 'unreadable' | 'unknown';

/** What a body's first bytes say it is (`unreadable`: a format libvips here cannot read). */
export function imageKind(head: Buffer): ImageKind {
  const at = (bytes: readonly number[], offset = 0) => bytes.every((b, i) => head[offset + i] === b);
  if (at([0xff, 0xd8, 0xff])) return 'jpeg';
  // A PNG's first chunk must be IHDR: a signature followed by garbage is no PNG.
  if (at([0x89, 0x50, 0x4e, 0x47]) && at([0x49, 0x48, 0x44, 0x52], 12)) return 'png';
  if (at([0x47, 0x49, 0x46, 0x38])) return 'gif';
  if (at([0x52, 0x49, 0x46, 0x46]) && at([0x57, 0x45, 0x42, 0x50], 8)) return 'webp';
  if (at([0x49, 0x49, 0x2a, 0x00]) || at([0x4d, 0x4d, 0x00, 0x2a])) return 'tiff';
  // JPEG 2000 (JP2 box or codestream), BMP, ISO BMFF (HEIC; AVIF decodes, so it reaches here only when broken).
  if (at([0x00, 0x00, 0x00, 0x0c, 0x6a, 0x50]) || at([0xff, 0x4f, 0xff, 0x51]) || at([0x42, 0x4d]) || at([0x66, 0x74, 0x79, 0x70], 4)) return 'unreadable';
  return 'unknown';
}

/** The first and last bytes of a body, or of the file holding it, and its length. */
function ends(input: string | Buffer): { head: Buffer; tail: Buffer; length: number } {
  if (Buffer.isBuffer(input)) return { head: input.subarray(0, TAIL), tail: input.subarray(Math.max(0, input.length - TAIL)), length: input.length };
  const fd = openSync(input, 'r');
  try {
    const length = fstatSync(fd).size;
    const head = Buffer.alloc(Math.min(TAIL, length));
    readSync(fd, head, 0, head.length, 0);
    const tail = Buffer.alloc(Math.min(TAIL, length));
    readSync(fd, tail, 0, tail.length, length - tail.length);
    return { head, tail, length };
  } finally {
    closeSync(fd);
  }
}

/** The tail without the padding some servers and encoders append (zeros, line ends, spaces). */
function trimmed(tail: Buffer): Buffer {
  let end = tail.length;
  while (end > 0 && (tail[end - 1] === 0x00 || tail[end - 1] === 0x0a || tail[end - 1] === 0x0d || tail[end - 1] === 0x20)) end--;
  return tail.subarray(0, end);
}

function isWhole(kind: ImageKind, head: Buffer, tail: Buffer, length: number): boolean {
  const t = trimmed(tail);
  switch (kind) {
    case 'jpeg':
      return t.length >= 2 && t[t.length - 2] === 0xff && t[t.length - 1] === 0xd9;
    case 'png':
      // The IEND chunk: length 0, type IEND, its CRC.
      return t.length >= 12 && t.subarray(t.length - 8, t.length - 4).toString('latin1') === 'IEND';
    case 'gif':
      return t.length >= 1 && t[t.length - 1] === 0x3b;
    case 'webp':
      return head.length >= 8 && length >= head.readUInt32LE(4) + 8;
    default:
      // TIFF has no end marker: what does not decode is taken as damaged, not cut.
      return true;
  }
}

export function decodeFailure(err: unknown, input: string | Buffer, where: string): PermanentError {
  const { head, tail, length } = ends(input);
  const kind = imageKind(head);
  const cause = { cause: err };
  if (kind === 'unknown') return new PermanentError(`${where}: body is no image herbdl knows`, 'not_image', undefined, cause);
  if (kind === 'unreadable') return new PermanentError(`${where}: libvips here cannot read this format`, 'unsupported_format', undefined, cause);
  if (!isWhole(kind, head, tail, length)) return new PermanentError(`${where}: ${kind} is truncated (its end is missing)`, 'truncated', undefined, cause);
  return new PermanentError(`${where}: ${kind} is whole but does not decode (${(err as Error).message ?? err})`, 'corrupt', undefined, cause);
}
