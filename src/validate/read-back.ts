/**
 * A body that came in its file (over 512 KiB, see fetch), read back into
 * memory for its check.
 */
import { closeSync, openSync, readSync, statSync } from 'node:fs';

/**
 * A body up to this size is read back whole and checked from memory:
 * handed a path, libvips opens the file a score of times (each loader sniffs
 * it) and seeks in it some eighty times per image, measured with strace on
 * 1600 px sheets. Larger ones are decoded from the file.
 */
export const READ_BACK_BYTES = 32 * 1024 * 1024;

/** Buffers readBack hands out, back from the calls that used them (at most one per call at once). */
const free: Buffer[] = [];

/**
 * `use` of a large body from its file: in memory when it is not huge (a
 * buffer this thread reuses once `use` has ended: each read into memory of
 * its own was garbage in the libvips worker's isolate, 870 KB a 1600 px
 * sheet, 66 MB of it before V8 collected, measured), else its path.
 */
export async function readBack<T>(path: string, use: (input: Buffer | string) => Promise<T>): Promise<T> {
  const size = statSync(path).size;
  if (size > READ_BACK_BYTES) return use(path);
  const reused = free.pop();
  const buffer = reused && reused.length >= size ? reused : bufferFor(size, reused);
  try {
    return await use(readInto(path, buffer));
  } finally {
    if (buffer.length <= KEPT_BYTES) free.push(buffer);
  }
}

/** A buffer for a body of `size`: grown from `had` (doubling, up to KEPT_BYTES) to be kept, or one of its own when larger. */
function bufferFor(size: number, had: Buffer | undefined): Buffer {
  return Buffer.allocUnsafe(size <= KEPT_BYTES ? Math.min(KEPT_BYTES, Math.max(size, had?.length ?? 0) * 2) : size);
}

/**
 * Memory this thread keeps for readBackKept, up to this size: a body read
 * into memory of its own is garbage in the worker's isolate once checked,
 * and V8 lets each isolate gather tens of MB of it before it collects
 * (4000 x 6000 originals took a run to 377 MB). Larger bodies get their own.
 */
const KEPT_BYTES = 8 * 1024 * 1024;
let kept: Buffer = Buffer.alloc(0);

/**
 * readBack into memory this thread reuses: the bytes are valid only until
 * this thread's next call, so the caller must be done with them before it
 * awaits anything. A path when the body is too large to read back.
 */
export function readBackKept(path: string): Buffer | string {
  const size = statSync(path).size;
  if (size > READ_BACK_BYTES) return path;
  if (size <= kept.length) return readInto(path, kept);
  const grown = bufferFor(size, kept);
  if (grown.length <= KEPT_BYTES) kept = grown;
  return readInto(path, grown);
}

/** The file at `path` read into the start of `into` (at least its size): the bytes read. */
function readInto(path: string, into: Buffer): Buffer {
  const fd = openSync(path, 'r');
  try {
    let read = 0;
    for (let n = 1; n > 0 && read < into.length; read += n) n = readSync(fd, into, read, into.length - read, read);
    return into.subarray(0, read);
  } finally {
    closeSync(fd);
  }
}
