/** Applying a snapshot to a SQLite ledger (see ../snapshots.ts for the rule). */
import type Database from 'better-sqlite3';
import { SnapshotRefusedError } from '../../errors.js';
import { DROP_WORK_TABLES, REMOVED_COUNTS_SQL, REMOVING_SQL, removeUnlistedSteps, SNAPSHOT_NUMBER, UNLISTED } from '../snapshots.js';
import type { ListedImages } from '../listed-images.js';
import { NO_TALLY } from '../rows.js';
import type { IngestTally } from '../ledger.js';
import { writeTransaction } from './write-transaction.js';

export { SNAPSHOT_NUMBER };

/**
 * Removes what snapshot `gen` did not list (the images `listed` lacks), in
 * one transaction, and notes `gen` as applied; what it did, as a tally. No
 * `listed` (the ledger was empty before this snapshot: it listed everything)
 * only notes the number. More than `maxRemoval` (a share) of the ledger's
 * images to remove: nothing is removed, the number is noted all the same,
 * and SnapshotRefusedError says so.
 */
export function removeUnlisted(db: Database.Database, gen: number, listed: ListedImages | undefined, maxRemoval = 1): IngestTally {
  try {
    return removeOrRefuse(db, gen, listed, maxRemoval);
  } catch (err) {
    if (err instanceof SnapshotRefusedError) noteSnapshot(db, gen);
    throw err;
  }
}

function noteSnapshot(db: Database.Database, gen: number): void {
  db.prepare('UPDATE ledger_state SET value = ? WHERE name = ?').run(String(gen), SNAPSHOT_NUMBER);
}

function removeOrRefuse(db: Database.Database, gen: number, listed: ListedImages | undefined, maxRemoval: number): IngestTally {
  return writeTransaction(db, () => {
    let tally = NO_TALLY;
    if (listed) {
      db.exec(`DROP TABLE IF EXISTS ${UNLISTED}`);
      db.exec(`CREATE TEMP TABLE ${UNLISTED} (image_id INTEGER PRIMARY KEY)`);
      const insert = db.prepare(`INSERT INTO ${UNLISTED} (image_id) VALUES (?)`);
      for (const ids of listed.unmarked()) for (const id of ids) insert.run(id);
      const steps = removeUnlistedSteps();
      for (const sql of steps.read) db.exec(sql);
      const { removing, images } = db.prepare(REMOVING_SQL).get() as { removing: number; images: number };
      if (images > 0 && removing > maxRemoval * images) throw new SnapshotRefusedError(removing, images, maxRemoval);
      for (const sql of steps.change) db.exec(sql);
      const counts = db.prepare(REMOVED_COUNTS_SQL).get() as { images: number; ids: number; reopened: number };
      for (const sql of DROP_WORK_TABLES) db.exec(sql);
      tally = { ...NO_TALLY, removedImages: counts.images, removedIds: counts.ids, reopened: counts.reopened };
    }
    noteSnapshot(db, gen);
    return tally;
  });
}
