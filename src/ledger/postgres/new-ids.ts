/**
 * The gbifIDs a bulk load meets first in a transaction, COPYed into the ids
 * table beside their images (bulk-load.ts builds its key at the end).
 */
import type pg from 'pg';
import { BinaryRows, copyGbifIds, FLUSH_ROOM } from './copy-binary.js';


export class NewIds {
  private ids = new Float64Array(1 << 16);
  private count = 0;
  /** Bytes of their own: the next transaction's image rows are being made meanwhile. */
  private readonly rows = new BinaryRows(FLUSH_ROOM);

  note(gbifId: number): void {
    if (this.count === this.ids.length) {
      const grown = new Float64Array(this.ids.length * 2);
      grown.set(this.ids);
      this.ids = grown;
    }
    this.ids[this.count++] = gbifId;
  }

  /** The IDs noted since the last take (or clear). */
  take(): Float64Array {
    const taken = this.ids.slice(0, this.count);
    this.count = 0;
    return taken;
  }

  clear(): void {
    this.count = 0;
  }

  /** COPYs `ids` on the writer's connection (one COPY at a time), in its open transaction. */
  async copy(client: pg.PoolClient, ids: Float64Array): Promise<void> {
    await copyGbifIds(client, 'ids', ids, this.rows);
  }
}
