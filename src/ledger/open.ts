/** The one place that knows which ledger implementation backs a location. */
import type { Ledger } from './ledger.js';
import { openSqliteLedger, type OpenOptions } from './sqlite/sqlite-ledger.js';

export type { OpenOptions };

/** A postgres:// or postgresql:// URL names a shared ledger; anything else is a SQLite file. */
export function isPostgresUrl(location: string): boolean {
  return /^postgres(ql)?:\/\//i.test(location);
}

export async function openLedger(location: string, options: OpenOptions): Promise<Ledger> {
  if (!isPostgresUrl(location)) return openSqliteLedger(location, options);
  // pg is loaded only by those who use it.
  const { openPostgresLedger } = await import('./postgres/postgres-ledger.js');
  return openPostgresLedger(location, options);
}
