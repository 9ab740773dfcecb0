/**
 * `herbdl prune`: removes from the tree the files of gbifIDs a newer export
 * removed (`ingest --snapshot`), and of images a recheck found gone at the
 * source (their gbifIDs keep the rest; one left with none is removed), which
 * nothing else deletes. Per gbifID, all
 * or nothing, as a publish is: its paths (originals and derivatives) are
 * recorded as an intent, removed, their folders fsynced, then the ledger
 * forgets them, so a kill -9 half-way is finished by the next start of
 * prune, run or derive (which undoes open intents by removing their paths).
 * `--dry-run` only says what would go.
 */
import { statSync } from 'node:fs';
import { DonePass } from '../ledger/done-pass.js';
import type { DownloadLedger, PruneDue } from '../ledger/ledger.js';
import { derivativePath, finalPath } from '../store/layout.js';
import type { Publisher } from '../store/publisher.js';

export interface PruneSettings {
  /** The images folder (run's --out). */
  readonly out: string;
  readonly dryRun: boolean;
  readonly publisher: Publisher;
  readonly signal?: AbortSignal;
  /** Each path removed (or, in a dry run, that would be). */
  readonly onFile?: (path: string) => void;
  /** Once, when gbifIDs other workers hold are all that is left: how many (done-pass.ts). */
  readonly onWait?: (held: number) => void;
}

export interface PruneSummary {
  readonly out: string;
  readonly dryRun: boolean;
  /** Removed gbifIDs whose files were in the tree, and those files (originals and derivatives), with their bytes. */
  readonly ids: number;
  /** Images gone at the source whose files were removed. */
  readonly goneImages: number;
  readonly files: number;
  readonly bytes: number;
  readonly interrupted: boolean;
  readonly elapsedMs: number;
}

/** Removed gbifIDs per ledger round trip. */
const BATCH = 256;

/** The paths a removed gbifID may still have: each file, and its derivatives of every width it had. */
function pathsOf(out: string, id: PruneDue): string[] {
  return id.files.flatMap((nn) => [finalPath(out, id.gbifId, nn), ...id.widths.map((w) => derivativePath(out, w, id.gbifId, nn))]);
}

function sizeOf(path: string): number | undefined {
  try {
    return statSync(path).size;
  } catch {
    return undefined;
  }
}

export async function prune(ledger: DownloadLedger, settings: PruneSettings): Promise<PruneSummary> {
  const started = performance.now();
  const counts = { ids: 0, goneImages: 0, files: 0, bytes: 0 };

  /** A batch's files counted (and listed), then, unless a dry run, removed under intents and forgotten. */
  const pruneBatch = async (due: readonly PruneDue[]): Promise<void> => {
    for (const id of due) {
      const present = pathsOf(settings.out, id).filter((path) => {
        const size = sizeOf(path);
        if (size === undefined) return false;
        counts.files++;
        counts.bytes += size;
        settings.onFile?.(path);
        return true;
      });
      if (id.gone) counts.goneImages += id.gone.length;
      else if (present.length > 0) counts.ids++;
    }
    if (due.length === 0) return;
    // On a shared ledger a batch of gone images is held (prunableGone): a dry run lets it go untouched.
    if (settings.dryRun) return ledger.handBack(due.map((d) => d.gbifId));
    const byId = new Map(due.map((d) => [d.gbifId, d]));
    const items = due.map((id) => ({ gbifId: id.gbifId, files: [], images: [], stale: pathsOf(settings.out, id) }));
    await settings.publisher.publish(items, (pruned) => ledger.recordPruned(pruned.map((i) => byId.get(i.gbifId) as PruneDue)));
  };

  // Removed gbifIDs first (no worker takes those), then images gone at the source, whose gbifIDs others may hold.
  for (let after = -1; !settings.signal?.aborted; ) {
    const { last, due } = await ledger.prunable(after, BATCH);
    if (last === undefined) break;
    after = last;
    await pruneBatch(due);
  }
  const gone = new DonePass((after, limit, only) => ledger.prunableGone(after, limit, only), BATCH, -1, settings.signal, settings.onWait);
  while (!settings.signal?.aborted) {
    const due = await gone.next();
    if (due === undefined) break;
    await pruneBatch(due);
  }
  const interrupted = settings.signal?.aborted ?? false;
  return { out: settings.out, dryRun: settings.dryRun, ...counts, interrupted, elapsedMs: Math.round(performance.now() - started) };
}
