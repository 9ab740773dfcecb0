/**
 * Publishing a gbifID's images: all of them or none.
 *
 * Order, and what kill -9 at each point leaves:
 * 1. every temporary file fsynced (here, or  -> temps only; swept at next start
 *    by the validation that wrote it)
 * 2. intent (the final paths) committed      -> next start removes those paths
 * 3. temps renamed into place, stale files   -> same: a half-renamed ID is removed
 *    of a shrunken set removed, dirs fsynced
 * 4. ledger marks the ID done, clears intent -> done, with every file in place
 * So no partial gbifID stands in the tree, and no done gbifID lacks a file.
 */
import { existsSync } from 'node:fs';
import { link, mkdir, readdir, rename, rm, copyFile, stat, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { DownloadLedger, FetchedImage } from '../ledger/ledger.js';
import { fsyncPath } from './durable.js';
import { derivativeTemp, tempOwner, tempRoot, type TempOwner } from './layout.js';

export interface PublishItem {
  readonly gbifId: number;
  /** `synced`: written and fsynced already (by its validation); every other file is fsynced here first. */
  readonly files: readonly { readonly temp: string; readonly final: string; readonly synced?: true }[];
  readonly images: readonly FetchedImage[];
  /** Files an earlier, larger set of this gbifID left that the new set does not replace: removed under the same intent. */
  readonly stale?: readonly string[];
  /** Derivative widths published with it (their files are among `files`): what the ledger records it has. */
  readonly widths?: readonly number[];
}

/**
 * Records a published batch in the ledger: as done (run), or with new
 * derivatives (herbdl derive). A run's commit returns the gbifIDs the ledger
 * left pending (each gained an image since it was claimed).
 */
export type Commit = (items: readonly PublishItem[]) => Promise<readonly number[] | void>;

/**
 * Whether a stored file is in the tree at the size the ledger recorded for it
 * (a size not recorded is taken on trust): one cut short by a copy or a
 * failing disk is not, and must be neither linked into another gbifID nor
 * confirmed as it is. Other failures than its absence are thrown.
 */
export async function storedAsRecorded(path: string, bytes: number | null): Promise<boolean> {
  try {
    const found = await stat(path);
    return bytes === null || found.size === bytes;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return false;
    throw err;
  }
}

/** Hard-links `from` to `to` (same filesystem, no copy), copying where links are refused. */
export async function linkOrCopy(from: string, to: string): Promise<void> {
  try {
    await link(from, to);
  } catch {
    await copyFile(from, to);
  }
}

/** Waits for every operation to end, then throws the first failure: none is still under way when the caller hears of it. */
async function settleAll(operations: readonly Promise<unknown>[]): Promise<void> {
  const failed = (await Promise.allSettled(operations)).find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}

/** An unlink of a path that may be gone already. */
function ignoreMissing(err: NodeJS.ErrnoException): void {
  if (err.code !== 'ENOENT') throw err;
}

export class Publisher {
  constructor(
    private readonly out: string,
    private readonly ledger: DownloadLedger,
    /** Throws when the run has lost its hold on the ledger (a worker whose lease ran out must not publish). */
    private readonly checkHold: () => void = () => {},
    /** Derivative widths the run writes: their temporaries go with the image's when it is discarded. */
    private readonly widths: readonly number[] = [],
  ) {}

  /**
   * At start, holding the ledger for this run: undo the half-published IDs of
   * runs that died, and sweep their temporaries. A temp folder whose owner is
   * live (`isLive`) is never touched, nor is `own`, which is made ready.
   */
  async recover(own: string, isLive: (owner: TempOwner) => boolean): Promise<{ undone: number }> {
    const intents = await this.ledger.openIntents();
    for (const intent of intents) {
      for (const path of intent.paths) await rm(path, { force: true });
      // A replaced set (recheck) goes back to its old files: each backup renamed over whatever its final path holds now.
      for (const [backup, final] of intent.restore ?? []) if (existsSync(backup)) await rename(backup, final);
    }
    await this.ledger.clearIntents(intents.map((i) => i.gbifId));
    const root = tempRoot(this.out);
    await mkdir(root, { recursive: true });
    for (const name of await readdir(root)) {
      const path = join(root, name);
      const owner = tempOwner(name);
      if (path === own || (owner && isLive(owner))) continue;
      await rm(path, { recursive: true, force: true });
    }
    await mkdir(own, { recursive: true });
    return { undone: intents.length };
  }

  /** Returns the gbifIDs the commit left pending (see Commit). */
  async publish(items: readonly PublishItem[], commit: Commit = (done) => this.recordDone(done)): Promise<readonly number[]> {
    if (items.length === 0) return [];
    await Promise.all(items.flatMap((item) => item.files.filter((f) => !f.synced).map((f) => fsyncPath(f.temp, 'r+'))));
    this.checkHold();
    await this.ledger.beginPublish(items.map((item) => ({ gbifId: item.gbifId, paths: [...item.files.map((f) => f.final), ...(item.stale ?? [])] })));
    const folders = new Set(items.flatMap((item) => item.files.map((f) => dirname(f.final))));
    await settleAll([...folders].map((folder) => mkdir(folder, { recursive: true })));
    // A batch's renames all at once, as its fsyncs are: on the network filesystem that workers
    // sharing --out use on a cluster, each is a round trip to its server, and awaited one at a
    // time they added up to the batch's publish. The intent names every final path, so their
    // order is free. (On a local disk the difference was within the noise: 0 to 3% more
    // images/s in a run of 100 ms hosts.)
    await settleAll(
      items.flatMap((item) =>
        item.files.map(async (f) => {
          await rename(f.temp, f.final);
          // A file linked from its own stored copy (a reopened or partly adopted gbifID) is the same inode
          // as its final path, and rename() between two links of one file does nothing: drop the link.
          // For every other file the temporary is gone already. Asked in this thread (one stat of a
          // path just renamed, in the kernel's cache): an unlink on the thread pool that found nothing
          // cost about 2.5% of a run's main thread over 2,000 hosts, and rm()'s lstat first 5%.
          if (existsSync(f.temp)) await unlink(f.temp).catch(ignoreMissing);
        }),
      ),
    );
    for (const item of items) {
      for (const path of item.stale ?? []) {
        await rm(path, { force: true });
        // A stale path may name a folder that never was (a width this gbifID never had): nothing there to make durable.
        if (existsSync(dirname(path))) folders.add(dirname(path));
      }
    }
    await Promise.all([...folders].map((folder) => fsyncPath(folder)));
    return (await commit(items)) ?? [];
  }

  private recordDone(items: readonly PublishItem[]): Promise<readonly number[]> {
    return this.ledger.recordDone(items.map((item) => ({ gbifId: item.gbifId, images: item.images, widths: item.widths ?? [] })));
  }

  /**
   * Replaces files of done gbifIDs (recheck: an image changed at its host),
   * each gbifID's old set or its new one, never a mix. Order, and what kill
   * -9 at each point leaves:
   * 1. new files fsynced, each old file linked to a backup -> temporaries only
   * 2. intent (backups and finals) committed               -> next start renames
   * 3. new files renamed over the old, dirs fsynced           each backup back:
   * 4. `commit` records the new outcomes, clears the intent   the old set
   * 5. backups removed                                     -> the new set
   */
  async replace(items: readonly { readonly gbifId: number; readonly files: readonly { readonly temp: string; readonly final: string }[] }[], commit: () => Promise<void>): Promise<void> {
    if (items.length === 0) return commit();
    await Promise.all(items.flatMap((item) => item.files.map((f) => fsyncPath(f.temp, 'r+'))));
    // A final path with no file yet (a derivative never made) has no backup: undoing removes the new one.
    const intents = items.map((item) => ({
      gbifId: item.gbifId,
      paths: item.files.filter((f) => !existsSync(f.final)).map((f) => f.final),
      restore: item.files.filter((f) => existsSync(f.final)).map((f) => [`${f.temp}.old`, f.final] as const),
    }));
    const backups = intents.flatMap((i) => i.restore);
    for (const [backup, final] of backups) {
      await rm(backup, { force: true });
      await link(final, backup);
    }
    await Promise.all([...new Set(backups.map(([b]) => dirname(b)))].map((folder) => fsyncPath(folder)));
    this.checkHold();
    await this.ledger.beginPublish(intents);
    for (const item of items) {
      for (const f of item.files) {
        await mkdir(dirname(f.final), { recursive: true });
        await rename(f.temp, f.final);
      }
    }
    await Promise.all([...new Set(items.flatMap((item) => item.files.map((f) => dirname(f.final))))].map((folder) => fsyncPath(folder)));
    await commit();
    await Promise.all(backups.map(([backup]) => rm(backup, { force: true })));
  }

  /** Removes a job's temporaries (its gbifID failed or was set aside), with their derivatives'. */
  async discard(temps: readonly string[]): Promise<void> {
    await Promise.all(temps.flatMap((t) => [t, ...this.widths.map((w) => derivativeTemp(t, w))]).map((t) => rm(t, { force: true })));
  }
}
