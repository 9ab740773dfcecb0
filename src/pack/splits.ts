/**
 * Splits of a pack (`pack --split val=5,test=5`): each gbifID goes to one
 * split, all its images with it (a specimen's sheets in train and test would
 * leak), by a hash of the gbifID alone. So a split never depends on what
 * else the ledger holds or when an image was done: a set carried on as the
 * collection grows puts every new image where its gbifID always was, and
 * anyone can say which split a gbifID is in without herbdl (Python:
 * `int(hashlib.sha256(str(gbif_id).encode()).hexdigest()[:8], 16) / 2**32`,
 * against the shares in the order given, train's last).
 */
import { createHash } from 'node:crypto';
import type { Split } from '../config/options.js';

export type { Split };

/** Where a gbifID falls, from 0 (inclusive) to 1: the first 32 bits of the sha256 of its decimal digits. */
export function splitPosition(gbifId: number): number {
  return createHash('sha256').update(String(gbifId)).digest().readUInt32BE(0) / 2 ** 32;
}

/** The split `gbifId` belongs to: the first whose shares, added up in order, pass its position. */
export function splitOf(gbifId: number, splits: readonly Split[]): string {
  const at = splitPosition(gbifId);
  let upTo = 0;
  for (const split of splits) {
    upTo += split.share;
    if (at < upTo) return split.name;
  }
  // Rounding of shares that add up to 1 leaves the very last positions to the last split.
  return (splits[splits.length - 1] as Split).name;
}

/** The splits as index.json records them, and as a refusal names them: `val=5,test=5,train=90`. */
export function describeSplits(splits: readonly Split[]): string {
  return splits.map((s) => `${s.name}=${Math.round(s.share * 10_000) / 100}`).join(',');
}
