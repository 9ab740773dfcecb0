/**
 * Removed gbifIDs in a SQLite ledger (see ../snapshots.ts): which may still
 * have files in the tree, and forgetting those files once `herbdl prune`
 * has removed them. Called inside the callers' transactions where noted.
 */
import type Database from 'better-sqlite3';
import type { PruneDue } from '../ledger.js';
import { STATE } from './schema.js';
import { DROP_WORK_TABLES, imagesSelect, removeStatements } from '../snapshots.js';

export class SqliteRemovals {
  private readonly stmt;

  constructor(private readonly db: Database.Database) {
    this.stmt = {
      removedAfter: db.prepare(`SELECT gbif_id FROM ids WHERE gbif_id > ? AND state = ${STATE.removed} ORDER BY gbif_id LIMIT ?`).pluck(),
      widthsOf: db.prepare('SELECT width FROM derivatives WHERE gbif_id = ? ORDER BY width').pluck(),
      dropParts: db.prepare(`DELETE FROM image_parts WHERE image_id IN (SELECT image_id FROM images WHERE gbif_id = ? AND state = ${STATE.removed})`),
      forget: db.prepare(`UPDATE images SET sha256 = NULL, file_index = NULL WHERE gbif_id = ? AND state = ${STATE.removed}`),
      goneAfter: db.prepare(`SELECT DISTINCT gbif_id FROM images WHERE gone_at IS NOT NULL AND state = ${STATE.done} AND gbif_id > ? ORDER BY gbif_id LIMIT ?`).pluck(),
      goneOf: db.prepare(`SELECT image_id, COALESCE(file_index, image_index) FROM images WHERE gbif_id = ? AND gone_at IS NOT NULL AND state = ${STATE.done}`).raw(),
      goneTotal: db.prepare("UPDATE totals SET value = value - ? WHERE name = 'images_gone'"),
    };
  }

  /** Done gbifIDs with images gone at the source, each with those images and their files' NNs. */
  prunableGone(after: number, limit: number): { last: number | undefined; due: PruneDue[] } {
    const ids = this.stmt.goneAfter.all(after, limit) as number[];
    const due = ids.map((gbifId) => {
      const rows = this.stmt.goneOf.all(gbifId) as [number, number][];
      return { gbifId, files: rows.map((r) => r[1]).sort((a, b) => a - b), widths: this.stmt.widthsOf.all(gbifId) as number[], gone: rows.map((r) => r[0]) };
    });
    return { last: ids[ids.length - 1], due };
  }

  /** In the caller's transaction: images gone at the source, their files pruned, are removed (a gbifID left with none too). */
  removeGone(imageIds: readonly number[]): void {
    if (imageIds.length === 0) return;
    for (const sql of removeStatements(imagesSelect(imageIds), false)) this.db.exec(sql);
    for (const sql of DROP_WORK_TABLES) this.db.exec(sql);
    this.stmt.goneTotal.run(imageIds.length);
    this.db.exec(`UPDATE images SET sha256 = NULL, file_index = NULL WHERE image_id IN (${imageIds.map((id) => Math.trunc(id)).join(',')})`);
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
