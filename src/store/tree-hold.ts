/**
 * What every command that writes into the images folder starts with, once it
 * holds the ledger (run, recheck, derive, prune, adopt, verify --repair), and
 * verify, which only reads it: the downloader's side of the ledger, a
 * publisher, and a folder of temporaries of its own, made ready after undoing
 * what killed runs left (their half-published intents, their temporaries; a
 * live one's are never touched). The folder goes when the work ends, however
 * it ends.
 */
import { constants, type Dirent } from 'node:fs';
import { access, mkdir, readdir, rm } from 'node:fs/promises';
import { resolve } from 'node:path';
import { UsageError } from '../errors.js';
import type { DownloadLedger, Ledger, RunLock, WorkerStatus } from '../ledger/ledger.js';
import { ownerMayLive, runTempFolder } from './layout.js';
import { Publisher } from './publisher.js';

export interface TreeHold {
  readonly downloads: DownloadLedger;
  readonly publisher: Publisher;
  /** This process's temporaries, inside the images folder. */
  readonly temps: string;
  /** gbifIDs a killed run left half-published, undone now. */
  readonly undone: number;
}

export async function withTreeHold<T>(
  ledger: Ledger,
  lock: RunLock,
  out: string,
  /**
   * `widths`: derivatives the work writes (their temporaries go with the
   * images'); `recover` false: undo nothing first (a dry run; adopt);
   * `expectTree` false: the folder may hold none of the done gbifIDs' files
   * (adopt, which puts them there); `readOnly`: the work only reads the
   * tree (verify without --repair, a dry run of prune), so a folder that
   * cannot be written, an archived copy mounted read-only, will do: no
   * temporaries are made, and only half-published gbifIDs, if a killed run
   * left any, are undone first (unless `recover` is false).
   */
  options: { readonly widths?: readonly number[]; readonly recover?: boolean; readonly expectTree?: boolean; readonly readOnly?: boolean },
  work: (hold: TreeHold) => Promise<T>,
): Promise<T> {
  if (options.expectTree ?? true) await expectTree(ledger, out);
  const downloads = await ledger.openDownloads(lock);
  const publisher = new Publisher(out, downloads, () => lock.check(), options.widths);
  const temps = runTempFolder(out, lock.holder);
  const recover = options.recover ?? true;
  if (options.readOnly) {
    const intents = recover ? (await downloads.openIntents()).length : 0;
    if (intents === 0) return work({ downloads, publisher, temps, undone: 0 });
    await expectWritable(out, `a killed run left gbifIDs half-published in it (${intents}), to be undone before anything is checked; run this where the folder can be written`);
  } else await expectWritable(out, 'this command writes into it (herbdl verify without --repair, export and pack only read it)');
  let undone = 0;
  if (recover) {
    const live = await downloads.liveWorkers();
    undone = (await publisher.recover(temps, (owner) => ownerMayLive(owner, live))).undone;
  }
  await mkdir(temps, { recursive: true });
  let result: T;
  try {
    result = await work({ downloads, publisher, temps, undone });
  } catch (err) {
    // The work's own error is the one to say: one from clearing up after it (a disk gone bad) would hide it.
    await rm(temps, { recursive: true, force: true, maxRetries: 3 }).catch(() => {});
    throw err;
  }
  await rm(temps, { recursive: true, force: true, maxRetries: 3 });
  return result;
}

/**
 * A folder the command must write into that cannot be written (mounted
 * read-only, another user's): said in one line before anything is tried.
 * Node's recursive mkdir reported a read-only folder as ENOENT on the
 * temporaries' path.
 */
async function expectWritable(out: string, why: string): Promise<void> {
  try {
    await access(out, constants.W_OK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // Not there yet (made by the work), or a path through a file (the work's mkdir names it).
    if (code === 'ENOENT' || code === 'ENOTDIR') return;
    if (code === 'EROFS' || code === 'EACCES' || code === 'EPERM') {
      throw new UsageError(`${out}: the images folder cannot be written (${code}): ${why}`);
    }
    throw err;
  }
}

/**
 * A ledger with done gbifIDs beside an images folder that holds none of the
 * tree (not one `<id[:3]>` folder): --out names the wrong folder (a relative
 * path given from another directory, a typo). Refused before anything is
 * written there: a run went on into it, its new files apart from the old,
 * and derive, recheck and prune found every done gbifID's files missing.
 * Only an empty folder costs a look at the ledger's counters.
 */
export async function expectTree(ledger: Ledger, out: string, flag = '--out'): Promise<void> {
  if ((await holdsTree(out)) !== false) return;
  // A guard, not the work: a ledger that cannot answer now (a shared server with no connection free) is met by the work's own statements, which know how to wait.
  const { done, older } = await ledger.status({ hosts: 0 }).then(
    (status) => ({ done: status.ids.done, older: status.ids.done - status.workers.filter(young).reduce((n, w) => n + w.done, 0) }),
    () => ({ done: 0, older: 0 }),
  );
  if (older <= 0) return;
  // Looked at again: another worker may have published the first gbifIDs since. Its files were in place before its commit, so
  // a folder that still holds none after done gbifIDs were counted is not theirs (three workers starting at once met this).
  if ((await holdsTree(out)) !== false) return;
  throw new UsageError(
    `${flag} ${resolve(out)}: ${done.toLocaleString('en-US')} gbifIDs of this ledger are done, but this folder holds none of their files; give the folder they were downloaded to (one moved elsewhere is found by what it holds)`,
  );
}

/**
 * A shared folder (NFS) may show a machine a listing some seconds old: a
 * worker started beside others that have just published their first
 * gbifIDs must not be refused for not seeing them yet. What workers that
 * started in the last two minutes have done is left out of the count (their
 * age read from the server's clock, as their heartbeats are).
 */
const YOUNG_MS = 120_000;

function young(w: WorkerStatus): boolean {
  return !w.expired && !w.stopped && w.heartbeat - w.since < YOUNG_MS;
}

/** Whether the folder holds a `<id[:3]>` folder of the tree; undefined when it cannot be read (making its temporaries will say why, naming it). */
async function holdsTree(out: string): Promise<boolean | undefined> {
  let entries: Dirent[];
  try {
    entries = await readdir(out, { withFileTypes: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') return undefined;
    return false;
  }
  return entries.some((e) => e.isDirectory() && /^[0-9]{1,3}$/.test(e.name));
}
