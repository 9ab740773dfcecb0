/**
 * Exclusions in a SQLite ledger (see ../exclusions.ts for the rule). A batch
 * comes sorted and without repeats, so its IDs append to the rowid table in
 * key order: the list of 10M IDs costs about what `sqlite3 .import` of it does.
 */
import type Database from 'better-sqlite3';
import { EXCLUSIONS_APPLIED, excludeStatements, listedMovableSql, MOVABLE_STATES, type ExcludeTally } from '../exclusions.js';

/** IDs per statement: SQLite allows 32,766 parameters; a few hundred per statement is where the gain flattens. */
const PER_STATEMENT = 500;
const SCOPE = 'temp.exclude_now';

function prepareScope(db: Database.Database): void {
  db.exec(`CREATE TEMP TABLE IF NOT EXISTS exclude_now (gbif_id INTEGER PRIMARY KEY)`);
  db.exec(`DELETE FROM ${SCOPE}`);
}

function moveScope(db: Database.Database): number {
  const n = db.prepare(`SELECT count(*) FROM ${SCOPE}`).pluck().get() as number;
  if (n > 0) for (const sql of excludeStatements(SCOPE)) db.exec(sql);
  return n;
}

export class SqliteExclusions {
  private readonly list;
  private readonly scope;
  /** The statements for a whole PER_STATEMENT run, prepared once; a batch's shorter tail prepares its own. */
  private readonly full;

  constructor(private readonly db: Database.Database) {
    const values = (n: number) => Array.from({ length: n }, () => '(?)').join(',');
    const inList = (n: number) => Array.from({ length: n }, () => '?').join(',');
    prepareScope(db);
    this.list = (n: number) => db.prepare(`INSERT OR IGNORE INTO exclusions(gbif_id) VALUES ${values(n)}`);
    this.scope = (n: number) => db.prepare(`INSERT OR IGNORE INTO ${SCOPE}(gbif_id) SELECT gbif_id FROM ids WHERE gbif_id IN (${inList(n)}) AND state IN ${MOVABLE_STATES}`);
    this.full = { list: this.list(PER_STATEMENT), scope: this.scope(PER_STATEMENT) };
  }

  /** Lists a batch of gbifIDs (sorted, no repeats) and excludes those the ledger has pending or failed, in one transaction. */
  add(ids: Float64Array): ExcludeTally {
    const full = this.full;
    return this.db.transaction(() => {
      const hasIds = this.db.prepare('SELECT EXISTS (SELECT 1 FROM ids)').pluck().get() === 1;
      this.db.exec(`DELETE FROM ${SCOPE}`);
      let listed = 0;
      for (let at = 0; at < ids.length; at += PER_STATEMENT) {
        const part = Array.from(ids.subarray(at, at + PER_STATEMENT));
        const whole = part.length === PER_STATEMENT;
        listed += (whole ? full.list : this.list(part.length)).run(part).changes;
        if (hasIds) (whole ? full.scope : this.scope(part.length)).run(part);
      }
      return { listed, excluded: moveScope(this.db) };
    })();
  }
}

/** Marks that an ingest is adding IDs the exclusions have not met yet (in its first transaction). */
export function exclusionsPending(db: Database.Database): void {
  db.prepare('INSERT OR REPLACE INTO ledger_state(name, value) VALUES (?, ?)').run(EXCLUSIONS_APPLIED, '0');
}

/** After an ingest (or at the next open, if one died): excludes every listed ID it added. Returns how many. */
export function applyExclusions(db: Database.Database): number {
  const flag = db.prepare('SELECT value FROM ledger_state WHERE name = ?').pluck().get(EXCLUSIONS_APPLIED);
  if (flag !== '0') return 0;
  return db.transaction(() => {
    prepareScope(db);
    db.exec(listedMovableSql(SCOPE));
    const n = moveScope(db);
    db.prepare('UPDATE ledger_state SET value = ? WHERE name = ?').run('1', EXCLUSIONS_APPLIED);
    return n;
  })();
}
