/**
 * A set of webdataset shards on disk: `herbdl-000000.tar`, ... numbered
 * without gaps, each with `<shard>.stats.json` beside it, and `index.json`
 * listing them all. A shard counts as finished once its stats file exists:
 * the tar is renamed into place first, then its stats, then the index, each
 * written to a temporary name, fsynced and renamed. So after a kill a second
 * pack keeps every finished shard and starts at the first one missing.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { writeSynced } from '../store/durable.js';

/** Where a shard's images start or end: the ledger's export order is gbifID, then NN. */
export interface ImageKey {
  readonly gbifID: number;
  readonly NN: number;
}

export interface ShardStats {
  readonly shard: string;
  /** Images (each a .jpg and a .json entry). */
  readonly count: number;
  /** Bytes of the image files in it. */
  readonly bytes: number;
  readonly first: ImageKey;
  readonly last: ImageKey;
}

export function shardName(n: number): string {
  return `herbdl-${String(n).padStart(6, '0')}.tar`;
}

const statsName = (shard: string) => shard.replace(/\.tar$/, '.stats.json');

/** Writes a small file whole: temporary, fsync, rename. */
export async function writeWhole(path: string, text: string | Uint8Array): Promise<void> {
  const temp = `${path}.${process.pid}.part`;
  try {
    await writeSynced(temp, text);
  } catch (err) {
    // Half written (a full disk): gone at once, not left for the next pack to sweep.
    await rm(temp, { force: true });
    throw err;
  }
  await rename(temp, path);
}

/** The finished shards in `dir`, from 0 up to the first one without its stats. */
export function finishedShards(dir: string): ShardStats[] {
  const found: ShardStats[] = [];
  for (let n = 0; ; n++) {
    const name = shardName(n);
    const stats = join(dir, statsName(name));
    if (!existsSync(stats) || !existsSync(join(dir, name))) return found;
    found.push(JSON.parse(readFileSync(stats, 'utf8')) as ShardStats);
  }
}

/** Removes what a killed pack left half-written (temporaries of the same folder). */
export async function sweepTemporaries(dir: string): Promise<void> {
  for (const name of readdirSync(dir)) if (/\.part$/.test(name)) await rm(join(dir, name), { force: true });
}

export async function finishShard(dir: string, stats: ShardStats, all: readonly ShardStats[], totals: Record<string, unknown>): Promise<void> {
  await writeWhole(join(dir, statsName(stats.shard)), JSON.stringify(stats, null, 2) + '\n');
  await writeIndex(dir, all, totals);
}

export async function writeIndex(dir: string, all: readonly ShardStats[], totals: Record<string, unknown>): Promise<void> {
  const index = { format: 'webdataset', ...totals, shards: all.map((s) => ({ ...s, stats: statsName(s.shard) })) };
  await writeWhole(join(dir, 'index.json'), JSON.stringify(index, null, 2) + '\n');
}

export function keyAfter(a: ImageKey, b: ImageKey): boolean {
  return a.gbifID > b.gbifID || (a.gbifID === b.gbifID && a.NN > b.NN);
}
