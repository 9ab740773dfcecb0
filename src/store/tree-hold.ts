/**
 * What every command that writes into the images folder starts with, once it
 * holds the ledger (run, recheck, derive, prune, adopt): the downloader's
 * side of the ledger, a publisher, and a folder of temporaries of its own,
 * made ready after undoing what killed runs left (their half-published
 * intents, their temporaries; a live one's are never touched). The folder
 * goes when the work ends, however it ends.
 */
import type { Dirent } from 'node:fs';
import { mkdir, readdir, rm } from 'node:fs/promises';
import { resolve } from 'node:path';
import { UsageError } from '../errors.js';
import type { DownloadLedger, Ledger, RunLock } from '../ledger/ledger.js';
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
   * (adopt, which puts them there).
   */
  options: { readonly widths?: readonly number[]; readonly recover?: boolean; readonly expectTree?: boolean },
  work: (hold: TreeHold) => Promise<T>,
): Promise<T> {
  if (options.expectTree ?? true) await expectTree(ledger, out);
  const downloads = await ledger.openDownloads(lock);
  const publisher = new Publisher(out, downloads, () => lock.check(), options.widths);
  const temps = runTempFolder(out, lock.holder);
  let undone = 0;
  if (options.recover ?? true) {
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
 * A ledger with done gbifIDs beside an images folder that holds none of the
 * tree (not one `<id[:3]>` folder): --out names the wrong folder (a relative
 * path given from another directory, a typo). Refused before anything is
 * written there: a run went on into it, its new files apart from the old,
 * and derive, recheck and prune found every done gbifID's files missing.
 * Only an empty folder costs a look at the ledger's counters.
 */
export async function expectTree(ledger: Ledger, out: string, flag = '--out'): Promise<void> {
  let entries: Dirent[];
  try {
    entries = await readdir(out, { withFileTypes: true });
  } catch (err) {
    // Not a folder, or not one this user may read: making its temporaries says so, naming it.
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') return;
    entries = [];
  }
  if (entries.some((e) => e.isDirectory() && /^[0-9]{1,3}$/.test(e.name))) return;
  // A guard, not the work: a ledger that cannot answer now (a shared server with no connection free) is met by the work's own statements, which know how to wait.
  const done = await ledger.status({ hosts: 0 }).then(
    (status) => status.ids.done,
    () => 0,
  );
  if (done === 0) return;
  throw new UsageError(
    `${flag} ${resolve(out)}: ${done.toLocaleString('en-US')} gbifIDs of this ledger are done, but this folder holds none of their files; give the folder they were downloaded to (one moved elsewhere is found by what it holds)`,
  );
}
