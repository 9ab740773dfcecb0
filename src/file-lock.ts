/**
 * A lock the kernel lets go of when its process dies (kill -9 included):
 * SQLite's own lock on a small side file, held by an open exclusive
 * transaction until released. Nothing is ever written to the file. For one
 * run per ledger (ledger/sqlite/run-lock.ts) and one pack per set folder
 * (pack/set-lock.ts); on a shared filesystem with POSIX locks it holds
 * against another machine too.
 */
import { hostname } from 'node:os';
import Database from 'better-sqlite3';

export interface FileLock {
  release(): void;
}

/** Takes the lock on `path` at once, or returns undefined if another process holds it; throws what else went wrong. */
export function takeFileLock(path: string): FileLock | undefined {
  let lock: Database.Database | undefined;
  try {
    lock = new Database(path);
    lock.pragma('busy_timeout = 0');
    lock.pragma('locking_mode = EXCLUSIVE');
    lock.exec('BEGIN EXCLUSIVE');
  } catch (err) {
    lock?.close();
    const code = (err as { code?: string }).code;
    if (code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED') return undefined;
    throw err;
  }
  const held = lock;
  return {
    release() {
      if (!held.open) return;
      held.exec('ROLLBACK');
      held.close();
    },
  };
}

/** Who holds a lock, written where a refused process can read it (a ledger's row, a file beside the set). */
export interface LockHolder {
  readonly pid: number;
  readonly machine: string;
  /** Epoch ms. */
  readonly since: number;
}

export function thisProcess(): LockHolder {
  return { pid: process.pid, machine: hostname(), since: Date.now() };
}

/** `a run by pid 4242 on node17, since 2026-12-03T20:01:02.000Z`, for a refusal's message; `what`: "a run", "a pack". */
export function heldBy(what: string, holder: LockHolder): string {
  return `${what} by pid ${holder.pid} on ${holder.machine}, since ${new Date(holder.since).toISOString()}`;
}
