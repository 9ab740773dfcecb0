/**
 * Labels in the SQLite file (ledger/labels.ts says how a load works). An
 * occurrence file is in no gbifID order, and rows inserted in that order
 * into a keyed table land on random pages: at 500,000 rows the load took
 * twice as long as in gbifID order, and at 50M each batch would rewrite
 * thousands of pages. So rows are first appended to a scratch SQLite file
 * beside the ledger (its journal in memory: a load that dies starts over), then read
 * back sorted by SQLite's own sorter and appended in gbifID order to
 * labels_next in the ledger, and swapped in for labels (schema 13) at the
 * end. Every transaction on the ledger is a batch or the swap: short, so a
 * run writing beside it never waits out its busy timeout; each checks the
 * load's mark, so a load taken over stops at its next batch.
 */
import { readdirSync, rmSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import Database from 'better-sqlite3';
import { READ_PAGE } from '../rows.js';
import { LABEL_FIELDS, LABELLED_IDS, LABELS_LOADING, loadMark, storedValues, takenOver, valuesOf, type LabelRow, type LabelSummary, type LabelWriter } from '../labels.js';
import { writeTransaction } from './write-transaction.js';

/** Rows per transaction of the ordered copy into the ledger. */
const COPY_BATCH = 5_000;

const scratchPrefix = (ledger: string) => `${basename(ledger)}.labels-`;

export class SqliteLabelWriter implements LabelWriter {
  private readonly mark: Database.Statement;
  private readonly append: Database.Statement;

  private constructor(
    private readonly db: Database.Database,
    private readonly location: string,
    private readonly fields: readonly string[],
    private readonly token: string,
    private readonly scratch: Database.Database,
  ) {
    this.mark = db.prepare('SELECT value FROM ledger_state WHERE name = ?').pluck();
    this.append = scratch.prepare('INSERT INTO rows (gbif_id, vals) VALUES (?, ?)');
  }

  static open(db: Database.Database, location: string, fields: readonly string[]): SqliteLabelWriter {
    const token = loadMark();
    db.transaction(() => {
      db.prepare('INSERT OR REPLACE INTO ledger_state (name, value) VALUES (?, ?)').run(LABELS_LOADING, token);
      // What a load killed half-way, or taken over, left in the ledger goes.
      db.exec('DROP TABLE IF EXISTS labels_next');
      db.exec('DROP TABLE IF EXISTS labels_old');
    }).immediate();
    // And its scratch files: a load taken over stops at its next batch, writing to its own file meanwhile, unlinked or not.
    const folder = dirname(location);
    for (const name of readdirSync(folder)) if (name.startsWith(scratchPrefix(location))) rmSync(join(folder, name), { force: true });
    const scratch = new Database(`${location}.labels-${token}`);
    // Not OFF, which better-sqlite3's defensive mode refuses (the file kept its journal on disk, each batch written twice).
    scratch.pragma('journal_mode = MEMORY');
    scratch.pragma('synchronous = OFF');
    scratch.pragma('cache_size = -4000');
    scratch.exec('CREATE TABLE rows (gbif_id INTEGER NOT NULL, vals TEXT NOT NULL)');
    return new SqliteLabelWriter(db, location, fields, token, scratch);
  }

  private ours(): void {
    if (this.mark.get(LABELS_LOADING) !== this.token) throw takenOver(this.location);
  }

  async add(rows: readonly LabelRow[]): Promise<void> {
    this.ours();
    writeTransaction(this.scratch, () => {
      for (const row of rows) this.append.run(row.gbifId, storedValues(row.values));
    });
  }

  async finish(): Promise<{ labelled: number }> {
    const db = this.db;
    db.transaction(() => {
      this.ours();
      db.exec('DROP TABLE IF EXISTS labels_next');
      db.exec('CREATE TABLE labels_next (gbif_id INTEGER PRIMARY KEY, vals TEXT NOT NULL)');
    }).immediate();
    // In gbifID order, each gbifID's rows in file order: the last one listed stays.
    const insert = db.prepare('INSERT OR REPLACE INTO labels_next (gbif_id, vals) VALUES (?, ?)');
    const copy = db.transaction((batch: [number, string][]) => {
      this.ours();
      for (const [gbifId, vals] of batch) insert.run(gbifId, vals);
    });
    // SQLite sorts through temporary files as large as the rows, in SQLITE_TMPDIR or TMPDIR, else /var/tmp or /tmp (read
    // once, as SQLite starts: setting them here is too late), which README asks to point at a folder with room for a large load.
    let batch: [number, string][] = [];
    for (const row of this.scratch.prepare('SELECT gbif_id, vals FROM rows ORDER BY gbif_id, rowid').raw().iterate() as IterableIterator<[number, string]>) {
      batch.push(row);
      if (batch.length === COPY_BATCH) {
        copy.immediate(batch);
        batch = [];
      }
    }
    copy.immediate(batch);
    db.transaction(() => {
      this.ours();
      db.exec('DROP TABLE IF EXISTS labels_old');
      db.exec('ALTER TABLE labels RENAME TO labels_old');
      db.exec('ALTER TABLE labels_next RENAME TO labels');
      db.prepare('INSERT OR REPLACE INTO ledger_state (name, value) VALUES (?, ?)').run(LABEL_FIELDS, JSON.stringify(this.fields));
      db.prepare('DELETE FROM ledger_state WHERE name = ?').run(LABELS_LOADING);
    }).immediate();
    // The old labels' pages go, and the count is made, after the swap: each its own statement, none holding the ledger for the others.
    db.exec('DROP TABLE labels_old');
    const labelled = db.prepare('SELECT count(*) FROM ids JOIN labels USING (gbif_id)').pluck().get() as number;
    db.prepare('INSERT OR REPLACE INTO ledger_state (name, value) VALUES (?, ?)').run(LABELLED_IDS, String(labelled));
    return { labelled };
  }

  async close(): Promise<void> {
    this.scratch.close();
    rmSync(this.scratch.name, { force: true });
  }
}

export function labelSummary(db: Database.Database): LabelSummary | undefined {
  const get = db.prepare('SELECT value FROM ledger_state WHERE name = ?').pluck();
  const fields = get.get(LABEL_FIELDS) as string | undefined;
  if (fields === undefined) return undefined;
  return { fields: JSON.parse(fields) as string[], ids: Number(get.get(LABELLED_IDS) ?? 0) };
}

export function* labelRows(db: Database.Database): Generator<LabelRow> {
  // A page at a time, never one read open for a whole pack or export (READ_PAGE).
  const page = db.prepare('SELECT gbif_id, vals FROM labels WHERE gbif_id > ? ORDER BY gbif_id LIMIT ?').raw();
  for (let after = -1; ; ) {
    const rows = page.all(after, READ_PAGE) as [number, string][];
    for (const [gbifId, vals] of rows) yield { gbifId, values: valuesOf(vals) };
    if (rows.length < READ_PAGE) return;
    after = (rows[rows.length - 1] as [number, string])[0];
  }
}
