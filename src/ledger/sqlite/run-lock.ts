/**
 * One run at a time on a SQLite ledger. Two runs on one ledger undo each
 * other: each one's start-up recovery removes the other's temporaries and
 * half-published files. The lock is SQLite's own file lock on a small side
 * file (`<ledger>.run-lock`), held in an open exclusive transaction for the
 * run's life: the kernel drops it when the process dies, kill -9 included,
 * so a dead holder never blocks the next run and no pid is guessed at. Who
 * holds it (pid, machine, since) is written to the ledger for the refusal's
 * message.
 */
import type Database from 'better-sqlite3';
import { heldBy, takeFileLock, thisProcess, type FileLock } from '../../file-lock.js';
import { LedgerError } from '../../errors.js';
import type { RunHolder, RunLock } from '../ledger.js';

const HOLDER_KEY = 'run_holder';

function describe(holder: RunHolder | undefined): string {
  return holder ? heldBy('a run', holder) : 'another herbdl run';
}

export function lockForRun(ledger: Database.Database, location: string): RunLock {
  const path = `${location}.run-lock`;
  let lock: FileLock | undefined;
  try {
    lock = takeFileLock(path);
  } catch (err) {
    throw new LedgerError(`${path}: cannot take the run lock (${(err as Error).message})`, 'ledger_open', { cause: err });
  }
  if (!lock) {
    const raw = ledger.prepare('SELECT value FROM ledger_state WHERE name = ?').pluck().get(HOLDER_KEY) as string | undefined;
    const holder = raw ? (JSON.parse(raw) as RunHolder) : undefined;
    throw new LedgerError(`${location}: in use by ${describe(holder)}; one run at a time per ledger (wait for it to end, or stop it)`, 'ledger_busy');
  }
  const held = lock;
  const holder: RunHolder = thisProcess();
  ledger.prepare('INSERT OR REPLACE INTO ledger_state(name, value) VALUES (?, ?)').run(HOLDER_KEY, JSON.stringify(holder));
  let released = false;
  return {
    holder,
    check() {
      // The file lock holds until this process lets go or dies: nothing to lose meanwhile.
    },
    async release() {
      if (released) return;
      released = true;
      ledger.prepare('DELETE FROM ledger_state WHERE name = ?').run(HOLDER_KEY);
      held.release();
    },
  };
}
