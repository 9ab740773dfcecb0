/**
 * Bulk loads: the first ingest into an empty ledger appends images with no
 * index and builds the derived parts once, by sorting, when it ends (or at
 * the next ingest, if it died first). Running the finisher twice is harmless.
 *
 * During the load an ID's images are only checked against the rows just
 * before them (GBIF writes an ID's rows together). An ID that comes back
 * later in the file restarts at imageIndex 0, so every such revisit collides
 * on index 0; the finisher finds those IDs through the new index and renumbers
 * them in file order, dropping repeated URLs, exactly as an incremental ingest
 * would have numbered them.
 */
import type Database from 'better-sqlite3';
import { CREATE_ID_INDEX, DERIVED_INDEXES } from './schema.js';
import { writeTransaction } from './write-transaction.js';

/**
 * For a load that only appends (a bulk ingest, the first exclusion list):
 * WAL writes every page twice (log, then checkpoint); a rollback journal
 * writes nothing for pages that are new, and still leaves the last commit
 * after a kill. Fails harmlessly (stays WAL) if another connection has the
 * ledger open this instant: the load is then as safe and a little slower.
 */
export function appendOnlyJournal(db: Database.Database): void {
  try {
    db.pragma('journal_mode = DELETE');
  } catch {
    // A reader (status) had it open.
  }
}

/** Back to WAL after appendOnlyJournal; if a reader holds the ledger this instant, the next open sets WAL. */
export function sharedJournal(db: Database.Database): void {
  try {
    db.pragma('journal_mode = WAL');
  } catch {
    // A reader had it open.
  }
}

export interface BulkLoadResult {
  /** gbifIDs added to the ids table. */
  readonly ids: number;
  /** Rows removed as repeats of a (gbifID, URL) seen earlier in the load. */
  readonly duplicates: number;
}

export function bulkLoadPending(db: Database.Database): boolean {
  return db.prepare("SELECT value FROM ledger_state WHERE name = 'derived_complete'").pluck().get() === '0';
}

/** Called in the first transaction of a bulk load, so the flag and the rows commit together. */
export function beginBulkLoad(db: Database.Database): void {
  for (const index of DERIVED_INDEXES) db.exec(`DROP INDEX IF EXISTS ${index}`);
  db.exec("UPDATE ledger_state SET value = '0' WHERE name = 'derived_complete'");
}

function renumberRevisitedIds(db: Database.Database): number {
  const revisited = db
    .prepare('SELECT DISTINCT gbif_id FROM (SELECT gbif_id FROM images GROUP BY gbif_id, image_index HAVING count(*) > 1)')
    .pluck()
    .all() as number[];
  if (revisited.length === 0) return 0;
  const images = db.prepare('SELECT image_id, url, host_id FROM images WHERE gbif_id = ? ORDER BY image_id').raw();
  const renumber = db.prepare('UPDATE images SET image_index = ? WHERE image_id = ?');
  const remove = db.prepare('DELETE FROM images WHERE image_id = ?');
  const uncount = db.prepare('UPDATE hosts SET images = images - 1, pending = pending - 1 WHERE host_id = ?');
  let removed = 0;
  for (const gbifId of revisited) {
    const seen = new Set<string>();
    let next = 0;
    for (const [imageId, url, hostId] of images.all(gbifId) as [number, string, number][]) {
      if (seen.has(url)) {
        remove.run(imageId);
        uncount.run(hostId);
        removed++;
      } else {
        seen.add(url);
        renumber.run(next++, imageId);
      }
    }
  }
  return removed;
}

/**
 * Builds what a bulk load leaves out. `runs`, when the caller saw the whole
 * load, is how many runs of rows (an ID's rows together) it appended: if
 * that equals the IDs found, no ID came back later in the file and the
 * search for revisits is skipped.
 */
export function completeBulkLoad(db: Database.Database, runs?: number): BulkLoadResult {
  // The sort that builds the index may use a helper thread: the load's parsing thread is idle by now.
  db.pragma('threads = 1');
  try {
    return writeTransaction(db, () => {
      db.exec(CREATE_ID_INDEX);
      const before = db.prepare('SELECT count(*) FROM ids').pluck().get() as number;
      // DISTINCT walks images_by_id, so ids go in in key order: sequential writes.
      db.exec('INSERT INTO ids(gbif_id) SELECT DISTINCT gbif_id FROM images WHERE true ON CONFLICT DO NOTHING');
      const ids = (db.prepare('SELECT count(*) FROM ids').pluck().get() as number) - before;
      const duplicates = before === 0 && runs === ids ? 0 : renumberRevisitedIds(db);
      db.prepare("UPDATE totals SET value = value + ? WHERE name = 'ids_pending'").run(ids);
      db.exec("UPDATE ledger_state SET value = '1' WHERE name = 'derived_complete'");
      return { ids, duplicates };
    });
  } finally {
    db.pragma('threads = 0');
  }
}
