/**
 * `herbdl verify`: do the done gbifIDs still have their files? Every file the
 * ledger says a done gbifID has is looked for in the tree and its size
 * compared with the one recorded when it was stored; with `hash`, its bytes
 * are read and their sha256 compared too. The tree can lose files the ledger
 * cannot see go: a copy to another filesystem cut short, a disk that failed,
 * a folder deleted by hand, bits that rotted.
 *
 * With `repair`, a gbifID with a file missing or damaged is done no more: it
 * is pending again, the ledger forgets the sha256 of its lost files (so no
 * run takes what is left of one for a stored copy), and once that has
 * committed its damaged files are moved aside (never deleted). The next run
 * fetches what it lacks and links its intact files from themselves. A kill
 * between the commit and the move leaves a damaged file where the next run
 * publishes a fetched one: never a done gbifID without its file.
 */
import { stat } from 'node:fs';
import { namingPath } from '../errors.js';
import { InFlight } from '../in-flight.js';
import { DonePass } from '../ledger/done-pass.js';
import type { DownloadLedger, StoredFile, VerifiedSummary, VerifyDue } from '../ledger/ledger.js';
import { derivativePath, finalPath } from '../store/layout.js';
import { moveAside } from '../store/set-aside.js';
import { HashPool } from './hash-pool.js';
import type { HashResult } from './hash-worker.js';

export interface VerifySettings {
  /** The images folder (run's --out). */
  readonly out: string;
  /** Read every file and compare its sha256, not only its size. */
  readonly hash: boolean;
  readonly repair: boolean;
  /** Only gbifIDs above this one (0: all). */
  readonly after?: number;
  readonly signal?: AbortSignal;
  /** Each file found missing or damaged. */
  readonly onProblem?: (problem: FileProblem) => void;
  /** Once, when done gbifIDs another worker holds are all that is left: how many (done-pass.ts). */
  readonly onWait?: (held: number) => void;
}

export interface FileProblem {
  readonly gbifId: number;
  readonly path: string;
  readonly problem: 'missing' | 'damaged';
  /** What is wrong, for people: `12,345 bytes where the ledger has 23,456`. */
  readonly detail: string;
}

/** What the ledger keeps of a verify (its counts: VerifiedSummary, but its time), and what only this one says. */
export interface VerifySummary extends Omit<VerifiedSummary, 'at'> {
  readonly out: string;
  readonly repair: boolean;
  /** Bytes of the files found (read whole with `hash`). */
  readonly bytes: number;
  /** Damaged files moved to .herbdl-rejected/damaged/ (repair). */
  readonly movedAside: number;
  readonly elapsedMs: number;
}

/** Done gbifIDs per ledger round trip. */
const BATCH = 256;
/** Stats under way at once: each a round trip of the libuv pool, to a disk or a network filesystem when the cache is cold. */
const STATS_AT_ONCE = 32;

type Verdict = { readonly size: number } | Omit<FileProblem, 'gbifId' | 'path'>;

export async function verify(ledger: DownloadLedger, settings: VerifySettings): Promise<VerifySummary> {
  const started = performance.now();
  const pool = settings.hash ? new HashPool() : undefined;
  const tally = { ids: 0, files: 0, bytes: 0, missing: 0, damaged: 0, brokenIds: 0, reopened: 0, movedAside: 0 };
  const pass = new DonePass((after, limit, only) => ledger.claimVerify(after, limit, only), BATCH, settings.after ?? -1, settings.signal, settings.onWait);
  /** Set when stopped: every gbifID up to it was checked. */
  let checkedUpTo: number | undefined;
  // Two batches at once: one's files are stat'ed while the other's are hashed, and neither waits on the ledger's round trips.
  const batches = new InFlight(2);
  try {
    while (!batches.failed) {
      const through = pass.handedThrough;
      const due = await pass.next();
      if (settings.signal?.aborted) {
        // The batch just claimed is let go unchecked.
        if (due) await ledger.recordVerified(due.map((d) => d.gbifId), [], []);
        checkedUpTo = due ? through : pass.handedThrough;
        break;
      }
      if (due === undefined) break;
      await batches.add(checkBatch(due));
    }
    await batches.drain();
  } finally {
    await batches.drain().catch(() => {});
    await pool?.close();
  }
  // Every batch handed out before the stop has ended (drained): all up to `checkedUpTo` is checked.
  const interrupted = checkedUpTo !== undefined;
  const checkedThrough = interrupted ? { checkedThrough: checkedUpTo } : {};
  await ledger.recordVerifySummary({ at: Date.now(), hash: settings.hash, ids: tally.ids, files: tally.files, missing: tally.missing, damaged: tally.damaged, brokenIds: tally.brokenIds, reopened: tally.reopened, interrupted, ...checkedThrough });
  return { out: settings.out, hash: settings.hash, repair: settings.repair, ...tally, interrupted, ...checkedThrough, elapsedMs: Math.round(performance.now() - started) };

  /** A batch of done gbifIDs: their files checked, the broken ones repaired (with `repair`), the claims ended. */
  async function checkBatch(due: readonly VerifyDue[]): Promise<void> {
    // Each file, then its derivatives: of those the ledger records no size, only that they are there.
    const files = due.flatMap(({ gbifId, files, widths }) =>
      files.flatMap((file) => [
        { gbifId, path: finalPath(settings.out, gbifId, file.fileIndex), file, derivative: false },
        ...widths.map((w) => ({ gbifId, path: derivativePath(settings.out, w, gbifId, file.fileIndex), file: { ...file, bytes: null, sha256: null }, derivative: true })),
      ]),
    );
    const verdicts = await eachAtOnce(files, STATS_AT_ONCE, check);
    if (pool) await compareHashes(pool, files, verdicts);
    const broken = new Set<number>();
    const damaged: string[] = [];
    const lost: StoredFile[] = [];
    tally.ids += due.length;
    tally.files += files.length;
    files.forEach(({ gbifId, path, file, derivative }, k) => {
      const verdict = verdicts[k] as Verdict;
      if ('size' in verdict) {
        tally.bytes += verdict.size;
        return;
      }
      broken.add(gbifId);
      tally[verdict.problem]++;
      if (verdict.problem === 'damaged') damaged.push(path);
      if (!derivative) lost.push(file);
      settings.onProblem?.({ gbifId, path, ...verdict });
    });
    tally.brokenIds += broken.size;
    // Not `tally.reopened += await ...`: that reads the tally before the await, and two batches are under way at once.
    const reopened = await ledger.recordVerified(
      due.map((d) => d.gbifId),
      settings.repair ? [...broken] : [],
      settings.repair ? lost : [],
    );
    tally.reopened += reopened;
    if (settings.repair) {
      for (const path of damaged) await moveAside(settings.out, path, 'damaged');
      tally.movedAside += damaged.length;
    }
  }

  /** One file's verdict by its stat: a callback, not a promise (a third of the cost of a file over a warm cache). */
  function check({ path, file }: { path: string; file: StoredFile }, done: (verdict: Verdict) => void, fail: (err: unknown) => void): void {
    stat(path, (err, found) => {
      if (err) return err.code === 'ENOENT' || err.code === 'ENOTDIR' ? done({ problem: 'missing', detail: 'not in the tree' }) : fail(err);
      if (!found.isFile()) return done({ problem: 'damaged', detail: 'not a file' });
      if (file.bytes !== null && found.size !== file.bytes) return done({ problem: 'damaged', detail: `${count(found.size)} bytes where the ledger has ${count(file.bytes)}` });
      done({ size: found.size });
    });
  }
}

/** With --hash: the files whose size was right and whose sha256 the ledger has are read, and their hashes compared. */
async function compareHashes(pool: HashPool, files: readonly { readonly path: string; readonly file: StoredFile }[], verdicts: Verdict[]): Promise<void> {
  const wanted = files.flatMap((f, k) => ('size' in (verdicts[k] as Verdict) && f.file.sha256 !== null ? [k] : []));
  const results = await pool.hash(wanted.map((k) => (files[k] as { path: string }).path));
  wanted.forEach((k, i) => {
    const result = results[i] as HashResult;
    const recorded = (files[k] as { file: StoredFile }).file.sha256 as string;
    if ('sha256' in result) {
      if (result.sha256 !== recorded) verdicts[k] = { problem: 'damaged', detail: `its sha256 is ${result.sha256} where the ledger has ${recorded}` };
    } else if (result.error === 'ENOENT') verdicts[k] = { problem: 'missing', detail: 'not in the tree' };
    else if (result.error === 'EIO' || result.error === 'EISDIR') verdicts[k] = { problem: 'damaged', detail: `unreadable (${result.error})` };
    else throw namingPath(Object.assign(new Error(result.message), { code: result.error }), (files[k] as { path: string }).path);
  });
}

/** `work` on every item, `atOnce` at a time; the results in the items' order, or the first failure once none is under way. */
function eachAtOnce<T, R>(items: readonly T[], atOnce: number, work: (item: T, done: (result: R) => void, fail: (err: unknown) => void) => void): Promise<R[]> {
  const results = new Array<R>(items.length);
  return new Promise((resolve, reject) => {
    let next = 0;
    let running = 0;
    let failure: { err: unknown } | undefined;
    const start = (): void => {
      while (running < atOnce && next < items.length && !failure) {
        const k = next++;
        running++;
        let ended = false;
        const end = (): void => {
          if (ended) return;
          ended = true;
          running--;
          if (running === 0 && (failure || next >= items.length)) return failure ? reject(failure.err) : resolve(results);
          start();
        };
        work(
          items[k] as T,
          (result) => {
            results[k] = result;
            end();
          },
          (err) => {
            failure ??= { err };
            end();
          },
        );
      }
    };
    if (items.length === 0) resolve(results);
    else start();
  });
}

function count(n: number): string {
  return n.toLocaleString('en-US');
}
