/** The one place that knows which ledger implementation backs a location. */
import type { Ledger } from './ledger.js';
import { openSqliteLedger, type OpenOptions } from './sqlite/sqlite-ledger.js';

export type { OpenOptions };

export function openLedger(location: string, options: OpenOptions): Ledger {
  return openSqliteLedger(location, options);
}
