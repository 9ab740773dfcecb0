/**
 * `herbdl pack --format webdataset`: the stored images as tar shards a
 * training job reads sequentially. Each image is two adjacent entries,
 * `<gbifID>-NN.jpg` and `<gbifID>-NN.json` (webdataset groups a sample's
 * files by the name up to the first dot), in gbifID and NN order, the JSON
 * holding the attribution its licence needs. Tars are written by tar-stream
 * with fixed mtimes, owners and modes, so the same ledger and tree give
 * byte-identical shards. Memory is flat: images stream from the ledger, one
 * file at a time, and the tar is written 8 MB at a time.
 */
import { once } from 'node:events';
import { closeSync, fsync as fsyncCallback, openSync } from 'node:fs';
import { promisify } from 'node:util';
import { mkdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { pack as tarPack, type Pack } from 'tar-stream';
import { LabelCursor, type ExportedImage, type Ledger } from '../ledger/ledger.js';
import { createHash } from 'node:crypto';
import { namingPath } from '../errors.js';
import { imageName } from '../store/layout.js';
import { expectTree } from '../store/tree-hold.js';
import { readJpegFrame } from '../validate/jpeg-header.js';
import { bodyNow, notPacked } from './packed-images.js';
import { ShardFile } from './shard-file.js';
import { PackedSet, writeKeys, type PackedKey } from './set-keys.js';
import { expectKind } from './set-kind.js';
import { lockSetFolder } from './set-lock.js';
import { finishedShards, finishShard, keyAfter, shardName, sweepTemporaries, writeIndex, type ImageKey, type ShardStats } from './shards.js';

export interface PackSettings {
  /** The images folder (run's --out). */
  readonly images: string;
  /** Where the shards go. */
  readonly out: string;
  readonly shardSize: number;
  /** Pack the derivatives of this width (0: the originals). */
  readonly width?: number;
  /** One split of several (splits.ts): its name, all of them as index.json records them, and whether a gbifID is in it. */
  readonly split?: { readonly name: string; readonly splits: string; readonly has: (gbifId: number) => boolean };
  readonly signal?: AbortSignal;
  readonly onProgress?: (p: { images: number; shards: number }) => void;
}

export interface PackSummary {
  readonly out: string;
  /** Shards in the set now, and how many this pack wrote. */
  readonly shards: number;
  readonly written: number;
  /** Images this pack put into shards, and their bytes. */
  readonly images: number;
  readonly bytes: number;
  readonly interrupted: boolean;
  readonly elapsedMs: number;
  /**
   * A set carried on: of the images this pack put in, those below the set's
   * last packed image (done since its shards were written: a retry that
   * succeeded); and images the set holds that are not done in the ledger
   * now (removed by a snapshot, or reopened), counted once the ledger's
   * images were read to the end (not after an interrupt).
   */
  readonly late?: number;
  readonly stale?: number;
  /** Images the set holds in another version than the ledger's now (a recheck replaced them), counted as `stale` is. */
  readonly changed?: number;
  /** Images left out as they changed while this pack ran (a run, recheck or prune beside it): the next pack adds them. */
  readonly moving: number;
}

/** One fixed time for every entry: a shard's bytes depend on the ledger and the files only. */
const MTIME = new Date(Date.UTC(2000, 0, 1));
const fsync = promisify(fsyncCallback);

function entry(pack: Pack, name: string, body: Uint8Array): Promise<void> {
  // The callback comes once the tar has taken the bytes: awaiting it is the backpressure.
  return new Promise((resolve, reject) =>
    pack.entry({ name, size: body.length, mtime: MTIME, mode: 0o644, uid: 0, gid: 0, uname: '', gname: '' }, body, (err) => (err ? reject(err) : resolve())),
  );
}

/**
 * The JSON beside an image. Size, bytes and sha256 are the packed file's: the
 * ledger's for an original, read from the file itself for a derivative (its
 * frame header, its bytes hashed), which the ledger does not describe.
 */
function sidecar(image: ExportedImage, body: Buffer, derivative: boolean, labels: Record<string, string | null> | undefined): string {
  const frame = derivative ? readJpegFrame(body) : undefined;
  return JSON.stringify({
    gbifID: image.gbifId,
    NN: image.fileIndex,
    url: image.url,
    license: image.license,
    rightsHolder: image.rightsHolder,
    creator: image.creator,
    publisher: image.publisher,
    width: derivative ? (frame?.width ?? null) : image.width,
    height: derivative ? (frame?.height ?? null) : image.height,
    bytes: body.length,
    sha256: derivative ? createHash('sha256').update(body).digest('hex') : image.sha256,
    // Its gbifID's occurrence fields (herbdl labels), null where the occurrence file had no row for it.
    ...(labels ? { labels } : {}),
  });
}

/** An image's labels as its .json gives them: every field, null when its gbifID has none. */
async function sidecarLabels(cursor: LabelCursor | undefined, gbifId: number): Promise<Record<string, string | null> | undefined> {
  if (!cursor) return undefined;
  const values = await cursor.of(gbifId);
  return Object.fromEntries(cursor.fields.map((field, i) => [field, values?.[i] ?? null]));
}

/** A shard whose tar is written but not yet durable: `settle` fsyncs it and renames it into place. */
interface WrittenShard extends Omit<ShardStats, 'shard'> {
  readonly keys: readonly PackedKey[];
  settle(): Promise<void>;
}

/** Where a shard's images come from: the ledger, the images folder, the width packed, the labels; `moving` counts the images left out as they changed (bodyNow). */
interface ShardSource {
  readonly ledger: Ledger;
  readonly imagesDir: string;
  readonly width: number;
  readonly labels: LabelCursor | undefined;
  readonly moving: { images: number };
}

async function writeShard(path: string, images: AsyncIterator<ExportedImage>, source: ShardSource, size: number): Promise<WrittenShard | undefined> {
  const { imagesDir, width, labels } = source;
  let first: ImageKey | undefined;
  let last: ImageKey | undefined;
  let count = 0;
  let bytes = 0;
  const keys: PackedKey[] = [];
  const temp = `${path}.${process.pid}.part`;
  const fd = openSync(temp, 'w');
  try {
    const file = new ShardFile(fd);
    const pack = tarPack();
    pack.on('data', (chunk) => file.add(chunk as Buffer));
    const ended = once(pack, 'end');
    while (count < size) {
      const next = await images.next();
      if (next.done) break;
      const found = await bodyNow(source.ledger, next.value, imagesDir, width);
      if (!found) {
        source.moving.images++;
        continue;
      }
      const { image, body } = found;
      const key = imageName(image.gbifId, image.fileIndex);
      await entry(pack, `${key}.jpg`, body);
      await entry(pack, `${key}.json`, Buffer.from(sidecar(image, body, width > 0, await sidecarLabels(labels, image.gbifId))));
      last = { gbifID: image.gbifId, NN: image.fileIndex };
      first ??= last;
      keys.push(image.sha256 ? { ...last, sha256: image.sha256 } : last);
      count++;
      bytes += body.length;
      await file.maybeFlush();
    }
    pack.finalize();
    await ended;
    await file.flush();
  } catch (err) {
    closeSync(fd);
    // A shard that could not be written whole goes at once: on a full disk it holds the space it took.
    await rm(temp, { force: true });
    throw namingPath(err, temp);
  }
  if (count === 0) {
    closeSync(fd);
    await rm(temp, { force: true });
    return undefined;
  }
  const settle = async () => {
    try {
      await fsync(fd);
    } finally {
      closeSync(fd);
    }
    await rename(temp, path);
  };
  return { count, bytes, first: first as ImageKey, last: last as ImageKey, keys, settle };
}

/** Packs into the set at settings.out the done images it lacks, holding its folder (set-lock.ts) throughout. */
export async function packWebdataset(ledger: Ledger, settings: PackSettings): Promise<PackSummary> {
  await expectTree(ledger, settings.images, '--images');
  await mkdir(settings.out, { recursive: true });
  const release = lockSetFolder(settings.out);
  try {
    return await packSet(ledger, settings);
  } finally {
    release();
  }
}

/** packWebdataset, its folder held: what a killed pack left half-written is swept first (no other pack is writing it). */
async function packSet(ledger: Ledger, settings: PackSettings): Promise<PackSummary> {
  const started = performance.now();
  await sweepTemporaries(settings.out);
  const width = settings.width ?? 0;
  const split = settings.split;
  const shards = finishedShards(settings.out);
  const labels = await LabelCursor.open(ledger);
  const fields = labels?.fields ?? [];
  try {
    if (shards.length > 0) expectKind(settings.out, { width, ...(split ? { split: { split: split.name, splits: split.splits } } : {}), labels: fields });
  } catch (err) {
    await labels?.close();
    throw err;
  }
  const kept = shards.length;
  // Its last image: the greatest a shard ends with (a pack that added late images began a run of shards lower down).
  const setLast = shards.reduce<ImageKey | undefined>((m, s) => (!m || keyAfter(s.last, m) ? s.last : m), undefined);
  const set = await PackedSet.open(settings.out, shards);
  const late = { images: 0 };
  const moving = { images: 0 };
  const images = notPacked(ledger, set, setLast, width, late, split?.has);
  let ended = false;
  let packed = 0;
  let bytes = 0;
  let interrupted = false;
  const totals = () => ({ width, ...(split ? { split: split.name, splits: split.splits } : {}), labels: fields, shardSize: settings.shardSize, images: shards.reduce((n, s) => n + s.count, 0), bytes: shards.reduce((n, s) => n + s.bytes, 0) });
  // A shard is made durable (fsync, rename, stats, index) while the next one is read and written; in order, one at a time.
  let settling: Promise<void> = Promise.resolve();
  try {
    for (let next = shards.length; ; next++) {
      if (settings.signal?.aborted) {
        interrupted = true;
        break;
      }
      const shard = shardName(next);
      const written = await writeShard(join(settings.out, shard), images, { ledger, imagesDir: settings.images, width, labels, moving }, settings.shardSize);
      if (!written) {
        ended = true;
        break;
      }
      await settling;
      const { settle, keys, ...stats } = written;
      settling = (async () => {
        await settle();
        // Its keys before its stats, which make it finished: a finished shard's keys are always beside it.
        await writeKeys(settings.out, shard, keys);
        shards.push({ shard, ...stats });
        await finishShard(settings.out, { shard, ...stats }, shards, totals());
        packed += stats.count;
        bytes += stats.bytes;
        settings.onProgress?.({ images: packed, shards: shards.length });
      })();
      settling.catch(() => {}); // thrown where it is awaited, with the next shard or at the end
    }
    await settling;
  } catch (err) {
    await settling.catch(() => {});
    // The ledger's cursor is closed on the way out too: left open, closing the ledger fails and hides this error.
    await images.return(undefined).catch(() => {});
    await labels?.close().catch(() => {});
    throw err;
  }
  await images.return(undefined);
  await labels?.close();
  if (shards.length === kept) await writeIndex(settings.out, shards, totals());
  return {
    out: settings.out,
    shards: shards.length,
    written: shards.length - kept,
    images: packed,
    bytes,
    interrupted,
    elapsedMs: Math.round(performance.now() - started),
    moving: moving.images,
    ...(kept > 0 ? { late: late.images, ...(ended ? { stale: set.stale, changed: set.changed } : {}) } : {}),
  };
}
