/**
 * What every command that writes into the images folder starts with, once it
 * holds the ledger (run, recheck, derive, prune, adopt): the downloader's
 * side of the ledger, a publisher, and a folder of temporaries of its own,
 * made ready after undoing what killed runs left (their half-published
 * intents, their temporaries; a live one's are never touched). The folder
 * goes when the work ends, however it ends.
 */
import { mkdir, rm } from 'node:fs/promises';
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
  /** `widths`: derivatives the work writes (their temporaries go with the images'); `recover` false: undo nothing first (a dry run; adopt). */
  options: { readonly widths?: readonly number[]; readonly recover?: boolean },
  work: (hold: TreeHold) => Promise<T>,
): Promise<T> {
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
