/**
 * Verifying a SQLite ledger's done gbifIDs against the tree (herbdl verify):
 * their files as recorded, and reopening those whose files are missing or
 * damaged. One run holds the file, so reading is claiming.
 */
import type Database from 'better-sqlite3';
import { LAST_VERIFY, type StoredFile, type VerifiedSummary, type VerifyDue } from '../ledger.js';
import { doneFilesSql, groupDoneFiles, type DoneFileRow } from '../rows.js';
import { STATE } from './schema.js';
import { writeTransaction } from './write-transaction.js';

export class SqliteVerifications {
  private readonly stmt;

  constructor(private readonly db: Database.Database) {
    this.stmt = {
      doneAfter: db.prepare(`SELECT gbif_id FROM ids WHERE gbif_id > ? AND state = ${STATE.done} ORDER BY gbif_id LIMIT ?`).pluck(),
      widths: db.prepare('SELECT gbif_id, width FROM derivatives WHERE gbif_id > ? AND gbif_id <= ? ORDER BY gbif_id, width').raw(),
      files: db.prepare(doneFilesSql(`i.gbif_id IN (SELECT gbif_id FROM ids WHERE gbif_id > ? AND gbif_id <= ? AND state = ${STATE.done})`)).raw(),
      // As an ingest reopens a done gbifID that gained an image: its images stay done, their sound files its own stored copies.
      reopen: db.prepare(`UPDATE ids SET state = ${STATE.pending}, blocked_host = NULL WHERE gbif_id = ? AND state = ${STATE.done}`),
      total: db.prepare('UPDATE totals SET value = value + ? WHERE name = ?'),
      // A stored copy is one whose sha256 the ledger has (stored-copies.ts): a lost file's is forgotten.
      unvouchImage: db.prepare('UPDATE images SET sha256 = NULL WHERE image_id = ?'),
      unvouchPart: db.prepare('UPDATE image_parts SET sha256 = NULL WHERE image_id = ? AND part_index = ?'),
      keep: db.prepare('INSERT OR REPLACE INTO ledger_state(name, value) VALUES (?, ?)'),
    };
  }

  claim(after: number, limit: number): { last: number | undefined; due: VerifyDue[] } {
    const ids = this.stmt.doneAfter.all(after, limit) as number[];
    const last = ids[ids.length - 1];
    if (last === undefined) return { last, due: [] };
    const widths = new Map<number, number[]>();
    for (const [gbifId, width] of this.stmt.widths.all(after, last) as [number, number][]) {
      const list = widths.get(gbifId);
      if (list) list.push(width);
      else widths.set(gbifId, [width]);
    }
    const claimed = ids.map((gbifId) => ({ gbifId, widths: widths.get(gbifId) ?? [] }));
    return { last, due: groupDoneFiles(claimed, this.stmt.files.all(after, last) as DoneFileRow[]) };
  }

  reopen(gbifIds: readonly number[], lost: readonly StoredFile[]): number {
    return writeTransaction(this.db, () => {
      for (const f of lost) {
        if (f.partIndex === null) this.stmt.unvouchImage.run(f.imageId);
        else this.stmt.unvouchPart.run(f.imageId, f.partIndex);
      }
      let reopened = 0;
      for (const id of gbifIds) reopened += this.stmt.reopen.run(id).changes;
      if (reopened > 0) {
        this.stmt.total.run(reopened, 'ids_pending');
        this.stmt.total.run(-reopened, 'ids_done');
      }
      return reopened;
    });
  }

  keepSummary(summary: VerifiedSummary): void {
    this.stmt.keep.run(LAST_VERIFY, JSON.stringify(summary));
  }
}
