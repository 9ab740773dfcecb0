/**
 * The SQLite ledger's record of open breakers: when each host's breaker
 * closes, and how many gbifIDs were waiting on it when the run ended (what
 * `status` names as blocked). A breaker recorded closed forgets its count.
 */
import type Database from 'better-sqlite3';

export class SqliteBreakers {
  private readonly stmt;

  constructor(private readonly db: Database.Database) {
    this.stmt = {
      open: db.prepare('SELECT host, breaker_open_until FROM hosts WHERE breaker_open_until IS NOT NULL').raw(),
      set: db.prepare('UPDATE hosts SET breaker_open_until = ?, blocked_ids = NULL WHERE host = ?'),
      blocked: db.prepare('UPDATE hosts SET blocked_ids = ? WHERE host = ? AND breaker_open_until IS NOT NULL'),
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

  recordBlocked(blocked: ReadonlyMap<string, number>): void {
    this.db.transaction(() => {
      for (const [host, ids] of blocked) this.stmt.blocked.run(ids, host);
    })();
  }

  /** Closes `host`'s breaker, or every open one; returns the hosts closed. */
  close(host?: string): string[] {
    return this.db.transaction(() => {
      const hosts = this.stmt.openHosts.all({ host: host ?? null }) as string[];
      for (const h of hosts) this.stmt.set.run(null, h);
      return hosts;
    })();
  }
}
