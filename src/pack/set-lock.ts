/**
 * One pack at a time per set folder. Two packs writing one set undo each
 * other: each sweeps the temporaries it finds when it starts, the other's
 * shard being written among them (measured: the first then failed on its
 * rename with ENOENT), and each adds what the set lacked when it began, so
 * a set both carried on could hold an image twice. A cluster job array
 * whose every task ends with the same `herbdl pack` does exactly that.
 *
 * The lock is a file lock (file-lock.ts) on `.herbdl-pack.lock` in the
 * folder, empty, held for the pack's life, as a run holds its ledger:
 * the kernel drops it when the process dies, kill -9 included, so a dead
 * pack never blocks the next, and on a shared filesystem with POSIX locks
 * it holds against a pack on another machine too. The file stays (removing
 * it would let a pack that opened it before the removal and one that makes
 * it again both hold it). Who holds it is written beside it,
 * `.herbdl-pack.holder`, for the refusal's message.
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SetBusyError } from '../errors.js';
import { heldBy, takeFileLock, thisProcess, type FileLock, type LockHolder } from '../file-lock.js';

const LOCK_FILE = '.herbdl-pack.lock';
const HOLDER_FILE = '.herbdl-pack.holder';

function describe(dir: string): string {
  try {
    return heldBy('a pack', JSON.parse(readFileSync(join(dir, HOLDER_FILE), 'utf8')) as LockHolder);
  } catch {
    return 'another herbdl pack'; // written just after the lock was taken: not yet, or not readable
  }
}

/** Takes `dir`'s lock (the folder exists), or refuses in one line naming its holder; where it cannot be taken, goes on without. Returns its release. */
export function lockSetFolder(dir: string): () => void {
  const path = join(dir, LOCK_FILE);
  let lock: FileLock | undefined;
  try {
    lock = takeFileLock(path);
  } catch (err) {
    // A filesystem that keeps no locks (a cluster's, mounted without them) fails the lock itself: the pack goes on, as it did
    // before there was a lock, saying what it cannot promise. One that cannot hold the file at all fails the pack's own writes,
    // which name the problem better than this would.
    if (/^SQLITE_IOERR/.test((err as { code?: string }).code ?? '')) {
      process.stderr.write(`herbdl: ${dir}: this filesystem keeps no file locks, so a second pack of this folder at the same time would not be refused (${(err as Error).message})\n`);
    }
    return () => {};
  }
  if (!lock) throw new SetBusyError(`${dir}: in use by ${describe(dir)}; one pack at a time per folder (wait for it to end, or stop it)`);
  writeFileSync(join(dir, HOLDER_FILE), JSON.stringify(thisProcess()) + '\n');
  const held = lock;
  let released = false;
  return () => {
    if (released) return;
    released = true;
    rmSync(join(dir, HOLDER_FILE), { force: true });
    held.release();
  };
}
