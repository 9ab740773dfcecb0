/**
 * Making files durable: the fsync that comes before a rename into place and
 * before the ledger counts anything as done (publisher.ts says the order).
 */
import { writev as writevCallback } from 'node:fs';
import { open } from 'node:fs/promises';
import { promisify } from 'node:util';
import { namingPath } from '../errors.js';

/** Flushes a file or folder already written (`r+` for a file some systems will not sync read-only). */
export async function fsyncPath(path: string, flags = 'r'): Promise<void> {
  const handle = await open(path, flags);
  try {
    await handle.sync();
  } catch (err) {
    throw namingPath(err, path);
  } finally {
    await handle.close();
  }
}

/** Writes a file whole and fsyncs it through the same handle: no second open to flush it. */
export async function writeSynced(path: string, data: string | Uint8Array): Promise<void> {
  const handle = await open(path, 'w');
  try {
    await handle.writeFile(data);
    await handle.sync();
  } catch (err) {
    // A write through the handle names no file: a full disk must be found.
    throw namingPath(err, path);
  } finally {
    await handle.close();
  }
}

const writev = promisify(writevCallback);

/**
 * Writes every byte of `chunks` at the file's position. A write may take
 * fewer bytes than it was given (a disk filling up does this before it
 * refuses): Node's write and writev say so and leave the rest unwritten, and
 * the file would be short, or missing bytes in its middle, with no error.
 */
export async function writeAll(fd: number, chunks: readonly Uint8Array[]): Promise<void> {
  let left = chunks;
  while (left.length > 0) {
    let wrote = (await writev(fd, left as Uint8Array[])).bytesWritten;
    if (wrote <= 0) throw new Error('writev wrote nothing');
    // A short write: carry on from where it stopped.
    const rest: Uint8Array[] = [];
    for (const c of left) {
      if (wrote >= c.length) wrote -= c.length;
      else {
        rest.push(c.subarray(wrote));
        wrote = 0;
      }
    }
    left = rest;
  }
}
