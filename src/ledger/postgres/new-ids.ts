/**
 * The gbifIDs a bulk load meets first in a transaction, COPYed into the ids
 * table beside their images (bulk-load.ts builds its key at the end).
 */
import type pg from 'pg';
import { IdList } from '../../id-list.js';
import { BinaryRows, copyGbifIds, FLUSH_ROOM } from './copy-binary.js';

export class NewIds {
  private readonly ids = new IdList(1 << 16);
  /** Bytes of their own: the next transaction's image rows are being made meanwhile. */
  private readonly rows = new BinaryRows(FLUSH_ROOM);

  note(gbifId: number): void {
    this.ids.push(gbifId);
  }

  /** The IDs noted since the last take (or clear). */
  take(): Float64Array {
    return this.ids.take();
  }

  clear(): void {
    this.ids.clear();
  }

  /** COPYs `ids` on the writer's connection (one COPY at a time), in its open transaction. */
  async copy(client: pg.PoolClient, ids: Float64Array): Promise<void> {
    await copyGbifIds(client, 'ids', ids, this.rows);
  }
}
