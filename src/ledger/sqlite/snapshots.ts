/** Applying a snapshot to a SQLite ledger (see ../snapshots.ts for the rule). */
import type Database from 'better-sqlite3';
import { DROP_WORK_TABLES, REMOVED_COUNTS_SQL, removeUnlistedStatements, SNAPSHOT_NUMBER } from '../snapshots.js';
import { NO_TALLY } from '../rows.js';
import type { IngestTally } from '../ledger.js';

export { SNAPSHOT_NUMBER };

/**
 * Removes what snapshot `gen` did not list, in one transaction, and notes
 * `gen` as applied; what it did, as a tally. `remove` false (the ledger was
 * empty before this snapshot: it listed everything) only notes the number.
 */
export function removeUnlisted(db: Database.Database, gen: number, remove = true): IngestTally {
  return db.transaction(() => {
    let tally = NO_TALLY;
    if (remove) {
      for (const sql of removeUnlistedStatements(gen)) db.exec(sql);
      const counts = db.prepare(REMOVED_COUNTS_SQL).get() as { images: number; ids: number; reopened: number };
      for (const sql of DROP_WORK_TABLES) db.exec(sql);
      tally = { ...NO_TALLY, removedImages: counts.images, removedIds: counts.ids, reopened: counts.reopened };
    }
    db.prepare('UPDATE ledger_state SET value = ? WHERE name = ?').run(String(gen), SNAPSHOT_NUMBER);
    return tally;
  })();
}
