/**
 * Which done images a pack takes, in gbifID and NN order, and each one's
 * stored file as the ledger recorded it.
 */
import { readFileSync } from 'node:fs';
import type { ExportedImage, Ledger } from '../ledger/ledger.js';
import { TreeDamagedError } from '../errors.js';
import { derivativePath, finalPath } from '../store/layout.js';
import type { PackedSet } from './set-keys.js';
import { keyAfter, type ImageKey } from './shards.js';

/**
 * A done image's file as the ledger recorded it. One gone, or an original
 * whose size is not the one recorded (cut short by a copy, a failing disk),
 * would go to training as it is, its .json vouching for the sound file's
 * sha256: refused, naming it, for verify to find them all.
 */
export function storedBody(image: ExportedImage, imagesDir: string, width: number): Buffer {
  const path = width > 0 ? derivativePath(imagesDir, width, image.gbifId, image.fileIndex) : finalPath(imagesDir, image.gbifId, image.fileIndex);
  const advice = 'herbdl verify --repair finds every such file and makes its gbifID pending, for the next run to fetch';
  let body: Buffer;
  try {
    body = readFileSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    throw new TreeDamagedError(`${path}: a done gbifID's file is not in the tree; ${advice}`);
  }
  if (width === 0 && image.bytes !== null && body.length !== image.bytes) {
    throw new TreeDamagedError(`${path} is ${body.length.toLocaleString('en-US')} bytes where the ledger has ${image.bytes.toLocaleString('en-US')}; ${advice}`);
  }
  return body;
}

/**
 * A done image's file with the ledger's row that describes it now. A pack
 * reads the ledger's done images a page at a time while a run, a recheck or
 * prune may go on beside it: a file replaced or removed since its row was
 * read differs from that row.
 * Such an image is packed as the ledger has it now, or left out (undefined)
 * while its gbifID is being published or once it is no longer done: the
 * next pack adds it, as it adds any image the set lacks. A file that
 * differs from the row the ledger still has is damage, refused.
 */
export async function bodyNow(ledger: Ledger, image: ExportedImage, imagesDir: string, width: number): Promise<{ image: ExportedImage; body: Buffer } | undefined> {
  try {
    return { image, body: storedBody(image, imagesDir, width) };
  } catch (err) {
    if (!(err instanceof TreeDamagedError)) throw err;
    const now = await ledger.doneFile(image.gbifId, image.fileIndex);
    if (now.publishing || !now.image) return undefined;
    if (now.image.sha256 === image.sha256 && now.image.bytes === image.bytes) throw err;
    try {
      return { image: now.image, body: storedBody(now.image, imagesDir, width) };
    } catch (again) {
      if (again instanceof TreeDamagedError) return undefined; // replaced once more meanwhile: the next pack takes it
      throw again;
    }
  }
}

/**
 * Done images the set does not hold, in gbifID and NN order; with a width,
 * only those of gbifIDs that have that derivative (both streams in gbifID
 * order); with a split, only those of its gbifIDs. `late` counts those
 * below the set's last image: done since its shards were written (a retry
 * that succeeded, a snapshot's new image).
 */
export async function* notPacked(
  ledger: Ledger,
  set: PackedSet,
  setLast: ImageKey | undefined,
  width: number,
  late: { images: number },
  /** Only gbifIDs of one split (pack --split). */
  inSplit?: (gbifId: number) => boolean,
): AsyncGenerator<ExportedImage> {
  let splitOf = -1;
  let splitHas = false;
  const derived = width > 0 ? ledger.derivedIds(width)[Symbol.asyncIterator]() : undefined;
  let next: number | undefined = -1;
  try {
    for await (const image of ledger.exportImages('done')) {
      if (derived) {
        while (next !== undefined && next < image.gbifId) {
          const r: IteratorResult<number> = await derived.next();
          next = r.done ? undefined : r.value;
        }
        if (next !== image.gbifId) continue;
      }
      if (inSplit) {
        // Asked once per gbifID (a hash of its digits), not once per image.
        if (image.gbifId !== splitOf) {
          splitOf = image.gbifId;
          splitHas = inSplit(image.gbifId);
        }
        if (!splitHas) continue;
      }
      const key = { gbifID: image.gbifId, NN: image.fileIndex };
      const held = set.has(key, image.sha256);
      if (held === true || (held !== false && (await held))) continue;
      if (setLast && !keyAfter(key, setLast)) late.images++;
      yield image;
    }
    await set.end();
  } finally {
    // Ended early or not, the ledger's pages of derivatives are let go.
    await derived?.return?.(undefined);
  }
}
