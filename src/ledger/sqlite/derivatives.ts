/**
 * The SQLite ledger's record of derivatives (run --derive, herbdl derive):
 * which widths each gbifID has every file at, and a counter per width in
 * totals, kept in the same transaction as the rows. Called inside the
 * callers' transactions.
 */
import type Database from 'better-sqlite3';
import type { DerivationDue } from '../ledger.js';
import { derivedTotalName } from '../rows.js';
import { STATE } from './schema.js';

export class SqliteDerivatives {
  private readonly stmt;
  /**
   * Whether any gbifID has ever had a derivative. Until one has, a publish
   * has none to drop, and skips the lookup (recordDone is the run's hot
   * path). Only the process that holds the ledger adds any, so this stays true.
   */
  private any: boolean;

  constructor(db: Database.Database) {
    this.stmt = {
      drop: db.prepare('DELETE FROM derivatives WHERE gbif_id = ? RETURNING width').pluck(),
      add: db.prepare('INSERT OR IGNORE INTO derivatives(gbif_id, width) VALUES (?, ?)'),
      count: db.prepare('INSERT INTO totals(name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = value + excluded.value'),
      isDone: db.prepare(`SELECT 1 FROM ids WHERE gbif_id = ? AND state = ${STATE.done}`).pluck(),
      doneAfter: db.prepare(`SELECT gbif_id FROM ids WHERE gbif_id > ? AND state = ${STATE.done} ORDER BY gbif_id LIMIT ?`).pluck(),
      widthsOf: db.prepare('SELECT width FROM derivatives WHERE gbif_id = ?').pluck(),
      known: db.prepare("SELECT substr(name, 10) FROM totals WHERE name LIKE 'derived_w%'").pluck(),
    };
    this.any = this.known().length > 0;
  }

  /** A gbifID published again: its derivatives are now exactly `widths`. */
  reset(gbifId: number, widths: readonly number[]): void {
    if (this.any) for (const w of this.stmt.drop.all(gbifId) as number[]) this.stmt.count.run(derivedTotalName(w), -1);
    this.add(gbifId, widths);
  }

  /** Derivatives published for a done gbifID (herbdl derive); false if it is no longer done. */
  record(gbifId: number, widths: readonly number[]): boolean {
    if (this.stmt.isDone.get(gbifId) === undefined) return false;
    this.add(gbifId, widths);
    return true;
  }

  private add(gbifId: number, widths: readonly number[]): void {
    for (const w of widths) {
      if (this.stmt.add.run(gbifId, w).changes === 0) continue;
      this.stmt.count.run(derivedTotalName(w), 1);
      this.any = true;
    }
  }

  /** Done gbifIDs after `after` (up to `limit` looked at), each with the widths of `widths` it lacks. */
  due(widths: readonly number[], after: number, limit: number, storedFiles: (gbifId: number) => number[]): { last: number | undefined; due: DerivationDue[] } {
    const ids = this.stmt.doneAfter.all(after, limit) as number[];
    const due: DerivationDue[] = [];
    for (const gbifId of ids) {
      const have = new Set(this.stmt.widthsOf.all(gbifId) as number[]);
      const missing = widths.filter((w) => !have.has(w));
      if (missing.length > 0) due.push({ gbifId, files: storedFiles(gbifId), missing });
    }
    return { last: ids[ids.length - 1], due };
  }

  /** Every width the ledger has ever recorded (a shrunken set's derivative files of each are stale). */
  known(): number[] {
    return (this.stmt.known.all() as string[]).map(Number);
  }
}
