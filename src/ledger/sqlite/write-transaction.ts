/**
 * Every write transaction on a SQLite ledger takes the write lock as it
 * begins (BEGIN IMMEDIATE), waiting for it as long as the busy timeout
 * allows. A deferred transaction (better-sqlite3's default) that reads first
 * and then writes cannot wait: while another process holds the write lock
 * (an ingest, an exclude, a labels load, which may all run beside a run),
 * SQLite refuses the upgrade at once with SQLITE_BUSY, without calling the
 * busy handler, since the read's snapshot would be stale once the lock came
 * free. Measured: a run with an ingest of 300,000 rows beside it stopped in
 * under two seconds with `database is locked`, exit 1, in its first
 * recordDone that met one of the ingest's transactions.
 */
import type Database from 'better-sqlite3';

export function writeTransaction<T>(db: Database.Database, work: () => T): T {
  return db.transaction(work).immediate();
}
