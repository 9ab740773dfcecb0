/**
 * The SQLite ledger's record of open breakers: when each host's breaker
 * closes. What waits on it (the gbifIDs parked behind it, and their count
 * that `status` names as blocked) is the downloader's (downloads.ts), and
 * stays parked when a breaker closes until a run takes it up.
 */
import type Database from 'better-sqlite3';
import { writeTransaction } from './write-transaction.js';

export class SqliteBreakers {
  private readonly stmt;

  constructor(private readonly db: Database.Database) {
    this.stmt = {
      open: db.prepare('SELECT host, breaker_open_until FROM hosts WHERE breaker_open_until IS NOT NULL').raw(),
      set: db.prepare('UPDATE hosts SET breaker_open_until = ? WHERE host = ?'),
      openHosts: db.prepare('SELECT host FROM hosts WHERE breaker_open_until IS NOT NULL AND (:host IS NULL OR host = :host) ORDER BY host').pluck(),
    };
  }

  /** Open breakers: host -> when it may be probed again (epoch ms). */
  open(): Map<string, number> {
    return new Map(this.stmt.open.all() as [string, number][]);
  }

  record(host: string, openUntil: number | null): void {
    this.stmt.set.run(openUntil, host);
  }

  /** Closes `host`'s breaker, or every open one; returns the hosts closed. */
  close(host?: string): string[] {
    return writeTransaction(this.db, () => {
      const hosts = this.stmt.openHosts.all({ host: host ?? null }) as string[];
      for (const h of hosts) this.stmt.set.run(null, h);
      return hosts;
    });
  }
}
