/**
 * The images a snapshot ingest has found listed, one bit per image id, for
 * both ledgers (see snapshots.ts for the rule).
 *
 * Kept in memory, not written to each image row: a newer export lists nearly
 * every image the ledger has, so stamping rows rewrote the whole images table
 * once per snapshot (in PostgreSQL a new version of every row, twice the
 * table until vacuum; in SQLite every page through the WAL). A bit per image
 * is 7 MB at 59M images, and an interrupted snapshot loses nothing it needs:
 * it is applied only when its files were read whole, in the same process.
 */
export class ListedImages {
  private readonly bits: Uint8Array;

  /** `lastImageId`: the highest image id when the snapshot began; images added after it were added by this ingest, and are listed. */
  constructor(readonly lastImageId: number) {
    this.bits = new Uint8Array(Math.floor(lastImageId / 8) + 1);
  }

  mark(imageId: number): void {
    if (imageId <= this.lastImageId) this.bits[imageId >>> 3]! |= 1 << (imageId & 7);
  }

  /**
   * The image ids from 1 to lastImageId not marked, increasing, up to
   * `size` at a time: the images the snapshot did not list, and ids that
   * name no live image (removed ones, gaps), which the removal's own select
   * drops. Few, unless the snapshot is another query's export.
   */
  *unmarked(size = 1 << 16): Generator<Float64Array> {
    let batch = new Float64Array(size);
    let n = 0;
    const bits = this.bits;
    for (let byte = 0; byte < bits.length; byte++) {
      const set = bits[byte]!;
      if (set === 0xff) continue;
      for (let bit = 0; bit < 8; bit++) {
        const id = byte * 8 + bit;
        if (id === 0 || id > this.lastImageId || (set & (1 << bit)) !== 0) continue;
        batch[n++] = id;
        if (n === size) {
          yield batch;
          batch = new Float64Array(size);
          n = 0;
        }
      }
    }
    if (n > 0) yield batch.subarray(0, n);
  }
}
