/**
 * Labels in the SQLite file (labels.ts says how a load works): loaded into
 * labels_loading, a transaction a batch, each checking the load's mark, and
 * swapped in for labels (schema 13) at the end.
 */
import type Database from 'better-sqlite3';
import { LABEL_FIELDS, LABELLED_IDS, LABELS_LOADING, loadMark, storedValues, takenOver, valuesOf, type LabelRow, type LabelSummary, type LabelWriter } from '../labels.js';

const LOADING_TABLE = 'CREATE TABLE labels_loading (gbif_id INTEGER PRIMARY KEY, vals TEXT NOT NULL)';

export class SqliteLabelWriter implements LabelWriter {
  private readonly insert: Database.Statement;
  private readonly mark: Database.Statement;

  private constructor(
    private readonly db: Database.Database,
    private readonly location: string,
    private readonly fields: readonly string[],
    private readonly token: string,
  ) {
    this.insert = db.prepare('INSERT OR REPLACE INTO labels_loading (gbif_id, vals) VALUES (?, ?)');
    this.mark = db.prepare('SELECT value FROM ledger_state WHERE name = ?').pluck();
  }

  static open(db: Database.Database, location: string, fields: readonly string[]): SqliteLabelWriter {
    const token = loadMark();
    db.transaction(() => {
      // What a load killed half-way, or taken over, had loaded goes.
      db.exec('DROP TABLE IF EXISTS labels_loading');
      db.exec(LOADING_TABLE);
      db.prepare('INSERT OR REPLACE INTO ledger_state (name, value) VALUES (?, ?)').run(LABELS_LOADING, token);
    }).immediate();
    return new SqliteLabelWriter(db, location, fields, token);
  }

  private ours(): void {
    if (this.mark.get(LABELS_LOADING) !== this.token) throw takenOver(this.location);
  }

  async add(rows: readonly LabelRow[]): Promise<void> {
    this.db.transaction(() => {
      this.ours();
      for (const row of rows) this.insert.run(row.gbifId, storedValues(row.values));
    }).immediate();
  }

  async finish(): Promise<{ labelled: number }> {
    return this.db.transaction(() => {
      this.ours();
      this.db.exec('DROP TABLE labels');
      this.db.exec('ALTER TABLE labels_loading RENAME TO labels');
      const labelled = this.db.prepare('SELECT count(*) FROM ids JOIN labels USING (gbif_id)').pluck().get() as number;
      const set = this.db.prepare('INSERT OR REPLACE INTO ledger_state (name, value) VALUES (?, ?)');
      set.run(LABEL_FIELDS, JSON.stringify(this.fields));
      set.run(LABELLED_IDS, String(labelled));
      this.db.prepare('DELETE FROM ledger_state WHERE name = ?').run(LABELS_LOADING);
      return { labelled };
    }).immediate();
  }

  async close(): Promise<void> {}
}

export function labelSummary(db: Database.Database): LabelSummary | undefined {
  const get = db.prepare('SELECT value FROM ledger_state WHERE name = ?').pluck();
  const fields = get.get(LABEL_FIELDS) as string | undefined;
  if (fields === undefined) return undefined;
  return { fields: JSON.parse(fields) as string[], ids: Number(get.get(LABELLED_IDS) ?? 0) };
}

export function* labelRows(db: Database.Database): Generator<LabelRow> {
  for (const [gbifId, vals] of db.prepare('SELECT gbif_id, vals FROM labels ORDER BY gbif_id').raw().iterate() as IterableIterator<[number, string]>) {
    yield { gbifId, values: valuesOf(vals) };
  }
}
