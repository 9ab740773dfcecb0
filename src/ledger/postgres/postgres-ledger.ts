import { LedgerError } from '../../errors.js';
import type { Ledger } from '../ledger.js';
import type { OpenOptions } from '../sqlite/sqlite-ledger.js';

export async function openPostgresLedger(location: string, _options: OpenOptions): Promise<Ledger> {
  throw new LedgerError(`${location}: not yet`, 'ledger_open');
}
