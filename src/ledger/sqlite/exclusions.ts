/**
 * Exclusions in a SQLite ledger (see ../exclusions.ts for the rule). A batch
 * comes sorted and without repeats, so its IDs append to the rowid table in
 * key order: the list of 10M IDs costs about what `sqlite3 .import` of it does.
 */
import type Database from 'better-sqlite3';
import { EXCLUSIONS_APPLIED, excludeStatements, MOVING, listedMovableSql, MOVABLE_STATES, restoreStatements, type ExcludeTally, type ImagesMoved, type UnexcludeTally } from '../exclusions.js';
import { STATE } from '../rows.js';
import { appendOnlyJournal } from './bulk-load.js';
import { writeTransaction } from './write-transaction.js';

/** IDs per statement: SQLite allows 32,766 parameters; a few hundred per statement is where the gain flattens. */
const PER_STATEMENT = 500;
const SCOPE = 'temp.exclude_now';
/** Ledger rows read in key order before a stretch is looked up instead (see scopeMovable). */
const SCAN_ROWS = 4 * PER_STATEMENT;

function prepareScope(db: Database.Database): void {
  db.exec(`CREATE TEMP TABLE IF NOT EXISTS exclude_now (gbif_id INTEGER PRIMARY KEY)`);
  // Keyed by image_id: the move looks each up, which an unkeyed table would first copy into an index of its own.
  db.exec(`CREATE TEMP TABLE IF NOT EXISTS ${MOVING} (image_id INTEGER PRIMARY KEY, host_id INTEGER, state INTEGER, error_code TEXT)`);
  db.exec(`DELETE FROM ${SCOPE}`);
}

/** Changes the gbifIDs in scope by `statements` (exclude's or undo's), if there are any; returns how many. */
function changeScope(db: Database.Database, statements: (scope: string, move: ImagesMoved) => string[]): number {
  const n = db.prepare(`SELECT count(*) FROM ${SCOPE}`).pluck().get() as number;
  if (n > 0) for (const sql of statements(SCOPE, 'by_image_id')) db.exec(sql);
  return n;
}

export class SqliteExclusions {
  private readonly list;
  private readonly scope;
  /** The statements for a whole PER_STATEMENT run, prepared once; a batch's shorter tail prepares its own. */
  private readonly full;
  /** The ledger's gbifIDs from one to another, in key order, with their state; and one put in scope. */
  private readonly scan;
  private readonly put;
  private readonly reused = new Array<number>(PER_STATEMENT).fill(0);

  /** Whether the exclusion list was empty when this began: it is then only appended to (see constructor). */
  readonly bulk: boolean;

  constructor(private readonly db: Database.Database) {
    this.bulk = db.prepare('SELECT NOT EXISTS (SELECT 1 FROM exclusions)').pluck().get() === 1;
    // The first list only appends, as a bulk ingest does.
    if (this.bulk) appendOnlyJournal(db);
    const values = (n: number) => Array.from({ length: n }, () => '(?)').join(',');
    const inList = (n: number) => Array.from({ length: n }, () => '?').join(',');
    prepareScope(db);
    this.list = (n: number) => db.prepare(`INSERT OR IGNORE INTO exclusions(gbif_id) VALUES ${values(n)}`);
    this.scope = (n: number) => db.prepare(`INSERT OR IGNORE INTO ${SCOPE}(gbif_id) SELECT gbif_id FROM ids WHERE gbif_id IN (${inList(n)}) AND state IN ${MOVABLE_STATES}`);
    this.full = { list: this.list(PER_STATEMENT), scope: this.scope(PER_STATEMENT) };
    this.scan = db.prepare('SELECT gbif_id, state FROM ids WHERE gbif_id BETWEEN ? AND ? ORDER BY gbif_id LIMIT ?').raw();
    this.put = db.prepare(`INSERT OR IGNORE INTO ${SCOPE}(gbif_id) VALUES (?)`);
  }

  /**
   * The next PER_STATEMENT IDs from `at` (fewer at the end) as statement
   * parameters, in an array reused from one statement to the next: making
   * one per statement (Array.from of the typed array) cost a tenth of the
   * insert.
   */
  private params(ids: Float64Array, at: number): number[] {
    const n = Math.min(PER_STATEMENT, ids.length - at);
    const part = n === PER_STATEMENT ? this.reused : new Array<number>(n);
    for (let i = 0; i < n; i++) part[i] = ids[at + i] as number;
    return part;
  }

  /** Lists a batch of gbifIDs (sorted, no repeats) and excludes those the ledger has pending or failed, in one transaction. */
  add(ids: Float64Array): ExcludeTally {
    const full = this.full;
    return writeTransaction(this.db, () => {
      const hasIds = this.db.prepare('SELECT EXISTS (SELECT 1 FROM ids)').pluck().get() === 1;
      this.db.exec(`DELETE FROM ${SCOPE}`);
      let listed = 0;
      for (let at = 0; at < ids.length; at += PER_STATEMENT) {
        const part = this.params(ids, at);
        listed += (part.length === PER_STATEMENT ? full.list : this.list(part.length)).run(part).changes;
      }
      if (hasIds) this.scopeMovable(ids);
      return { listed, excluded: changeScope(this.db, excludeStatements) };
    });
  }

  /**
   * Puts the ledger's pending or failed gbifIDs among `ids` (sorted) in scope.
   * The ledger's rows in the batch's range are read in key order beside the
   * batch, as a merge, while the ledger is no denser there than the batch;
   * where it is, the next stretch of IDs is looked up instead. Looking up
   * each of 10M listed IDs took 2 of the 7.8 s of excluding them from a
   * ledger of 1M; the reads are bounded by SCAN_ROWS per stretch of
   * PER_STATEMENT IDs either way.
   */
  private scopeMovable(ids: Float64Array): void {
    let at = 0;
    const last = ids[ids.length - 1] as number;
    while (at < ids.length) {
      const rows = this.scan.all(ids[at], last, SCAN_ROWS) as [number, number][];
      for (const [gbifId, state] of rows) {
        while (at < ids.length && (ids[at] as number) < gbifId) at++;
        if (at < ids.length && ids[at] === gbifId && (state === STATE.pending || state === STATE.failed)) this.put.run(gbifId);
      }
      if (rows.length < SCAN_ROWS) return;
      // The ledger is denser than the batch here: look up the next stretch.
      const covered = (rows[rows.length - 1] as [number, number])[0];
      while (at < ids.length && (ids[at] as number) <= covered) at++;
      const part = this.params(ids, at);
      if (part.length > 0) (part.length === PER_STATEMENT ? this.full.scope : this.scope(part.length)).run(part);
      at += part.length;
    }
  }
}

/**
 * Takes a batch of gbifIDs (sorted, no repeats) off the list and puts the
 * excluded ones among them back in the queue, in one transaction. Each ID
 * is looked up, not merged with the ledger as an exclusion's are: an undo is
 * rare, and the restore's own writes are most of its time (1.6M IDs of a
 * ledger of as many: 31 s, about what excluding them took).
 */
export function unexcludeIds(db: Database.Database, ids: Float64Array): UnexcludeTally {
  prepareScope(db);
  const unlist = db.prepare('DELETE FROM exclusions WHERE gbif_id = ?');
  const put = db.prepare(`INSERT OR IGNORE INTO ${SCOPE}(gbif_id) SELECT gbif_id FROM ids WHERE gbif_id = ? AND state = ${STATE.excluded}`);
  return writeTransaction(db, () => {
    db.exec(`DELETE FROM ${SCOPE}`);
    let unlisted = 0;
    for (const id of ids) {
      unlisted += unlist.run(id).changes;
      put.run(id);
    }
    return { unlisted, restored: changeScope(db, restoreStatements) };
  });
}

/** Marks that an ingest is adding IDs the exclusions have not met yet (in its first transaction). */
export function exclusionsPending(db: Database.Database): void {
  db.prepare('INSERT OR REPLACE INTO ledger_state(name, value) VALUES (?, ?)').run(EXCLUSIONS_APPLIED, '0');
}

/** After an ingest (or at the next open, if one died): excludes every listed ID it added. Returns how many. */
export function applyExclusions(db: Database.Database): number {
  const flag = db.prepare('SELECT value FROM ledger_state WHERE name = ?').pluck().get(EXCLUSIONS_APPLIED);
  if (flag !== '0') return 0;
  return writeTransaction(db, () => {
    prepareScope(db);
    db.exec(listedMovableSql(SCOPE));
    const n = changeScope(db, excludeStatements);
    db.prepare('UPDATE ledger_state SET value = ? WHERE name = ?').run('1', EXCLUSIONS_APPLIED);
    return n;
  });
}
