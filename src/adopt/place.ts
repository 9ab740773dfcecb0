/**
 * What adopt does to files (a rejected one is moved aside: store/set-aside.ts):
 * links a flat folder's image into herbdl's layout, and makes sure a file is
 * on disk before the ledger calls its gbifID done.
 */
import { mkdir, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fsyncPath } from '../store/durable.js';
import { finalPath } from '../store/layout.js';
import { linkOrCopy } from '../store/publisher.js';

/** Flushes files (cheap for files already on disk) and their folders: a gbifID is marked done only once this returns. */
export async function makeDurable(files: readonly string[]): Promise<void> {
  await Promise.all(files.map((f) => fsyncPath(f)));
  await Promise.all([...new Set(files.map(dirname))].map((d) => fsyncPath(d)));
}

let counter = 0;

/**
 * Puts a flat folder's `<gbifID>.jpg` into herbdl's layout under `out` as the
 * gbifID's first image (`-00`, unless a newer export removed that one): a hard link where the file system allows (no copy, the
 * original left alone), else a copy; through a temporary in `temps`, so the
 * final name only ever holds a whole file. Returns the final path.
 */
export async function linkIntoLayout(source: string, out: string, temps: string, gbifId: number, nn = 0): Promise<string> {
  const final = finalPath(out, gbifId, nn);
  const temp = join(temps, `${gbifId}-adopt-${++counter}.part`);
  await linkOrCopy(source, temp);
  await mkdir(dirname(final), { recursive: true });
  await rename(temp, final);
  // Already there from an earlier adopt: rename() between two links of one file leaves the temporary.
  await rm(temp, { force: true });
  return final;
}
