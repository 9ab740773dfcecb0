/** Reads a ledger file directly, to check what the CLI wrote. */
import Database from 'better-sqlite3';

export function readLedger<T>(path: string, query: (db: Database.Database) => T): T {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    return query(db);
  } finally {
    db.close();
  }
}

/** Writes to a ledger file directly, as a test's setup: what time or another program would have changed. */
export function writeLedger<T>(path: string, change: (db: Database.Database) => T): T {
  const db = new Database(path, { fileMustExist: true });
  try {
    return change(db);
  } finally {
    db.close();
  }
}

export interface StatusJson {
  complete: boolean;
  ids: { total: number; pending: number; done: number; failed: number; excluded: number };
  images: { total: number; pending: number; done: number; failed: number; excluded: number };
  hosts: { host: string; images: number; pending: number; done: number; failed: number }[];
  errors: Record<string, number>;
  blockedHosts: { host: string; pending: number; blockedIds?: number }[];
  blocked: { hosts: number; pending: number };
}

export interface IngestJson {
  rowsRead: number;
  gbifIds: number;
  images: number;
  duplicates: number;
  reopened: number;
  skipped: Record<string, number>;
  interrupted: boolean;
}
