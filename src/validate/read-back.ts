/**
 * A body that came in its file (over 512 KiB, see fetch), read back into
 * memory for its check.
 */
import { closeSync, fstatSync, openSync, readFileSync, readSync, statSync } from 'node:fs';

/**
 * A body up to this size is read back whole and checked from memory:
 * handed a path, libvips opens the file a score of times (each loader sniffs
 * it) and seeks in it some eighty times per image, measured with strace on
 * 1600 px sheets. Larger ones are decoded from the file.
 */
export const READ_BACK_BYTES = 32 * 1024 * 1024;

/** A large body from its file: in memory when it is not huge, else its path. */
export function readBack(path: string): Buffer | string {
  return statSync(path).size > READ_BACK_BYTES ? path : readFileSync(path);
}

/**
 * Memory this thread keeps for readBackKept, up to this size: a body read
 * into memory of its own is garbage in the worker's isolate once checked,
 * and V8 lets each isolate gather tens of MB of it before it collects
 * (4000 x 6000 originals took a run to 377 MB). Larger bodies get their own.
 */
const KEPT_BYTES = 8 * 1024 * 1024;
let kept = Buffer.alloc(0);

/**
 * readBack into memory this thread reuses: the bytes are valid only until
 * this thread's next call, so the caller must be done with them before it
 * awaits anything. A path when the body is too large to read back.
 */
export function readBackKept(path: string): Buffer | string {
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    if (size > READ_BACK_BYTES) return path;
    let into = kept;
    if (size > kept.length) {
      into = Buffer.allocUnsafe(size <= KEPT_BYTES ? Math.min(KEPT_BYTES, Math.max(size, kept.length * 2)) : size);
      if (into.length <= KEPT_BYTES) kept = into;
    }
    let read = 0;
    while (read < size) {
      const n = readSync(fd, into, read, size - read, read);
      if (n === 0) break;
      read += n;
    }
    return into.subarray(0, read);
  } finally {
    closeSync(fd);
  }
}
