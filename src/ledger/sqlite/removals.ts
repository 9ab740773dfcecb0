/**
 * Removed gbifIDs in a SQLite ledger (see ../snapshots.ts): which may still
 * have files in the tree, and forgetting those files once `herbdl prune`
 * has removed them. Called inside the callers' transactions where noted.
 */
import type Database from 'better-sqlite3';
import type { PruneDue } from '../ledger.js';
import { STATE } from './schema.js';

export class SqliteRemovals {
  private readonly stmt;

  constructor(db: Database.Database) {
    this.stmt = {
      removedAfter: db.prepare(`SELECT gbif_id FROM ids WHERE gbif_id > ? AND state = ${STATE.removed} ORDER BY gbif_id LIMIT ?`).pluck(),
      widthsOf: db.prepare('SELECT width FROM derivatives WHERE gbif_id = ? ORDER BY width').pluck(),
      dropParts: db.prepare(`DELETE FROM image_parts WHERE image_id IN (SELECT image_id FROM images WHERE gbif_id = ? AND state = ${STATE.removed})`),
      forget: db.prepare(`UPDATE images SET sha256 = NULL, file_index = NULL WHERE gbif_id = ? AND state = ${STATE.removed}`),
    };
  }

  /** `storedFiles` gives an ID's files' NNs (done images, and removed ones still stored). */
  prunable(after: number, limit: number, storedFiles: (gbifId: number) => number[]): { last: number | undefined; due: PruneDue[] } {
    const ids = this.stmt.removedAfter.all(after, limit) as number[];
    const due: PruneDue[] = [];
    for (const gbifId of ids) {
      const files = storedFiles(gbifId).sort((a, b) => a - b);
      const widths = this.stmt.widthsOf.all(gbifId) as number[];
      if (files.length > 0) due.push({ gbifId, files, widths });
    }
    return { last: ids[ids.length - 1], due };
  }

  /** In the caller's transaction: the ID's files are gone, so its images no longer name any. */
  forget(gbifId: number): void {
    this.stmt.dropParts.run(gbifId);
    this.stmt.forget.run(gbifId);
  }
}
