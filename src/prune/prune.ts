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
  let ids = 0;
  let goneImages = 0;
  let files = 0;
  let bytes = 0;
  let interrupted = false;
  // Removed gbifIDs first, then images gone at the source: the same steps, from two lists.
  for (const list of [ledger.prunable.bind(ledger), ledger.prunableGone.bind(ledger)]) {
    for (let after = -1; !interrupted; ) {
      if (settings.signal?.aborted) {
        interrupted = true;
        break;
      }
      const { last, due } = await list(after, BATCH);
      if (last === undefined) break;
      after = last;
      for (const id of due) {
        const present = pathsOf(settings.out, id).filter((path) => {
          const size = sizeOf(path);
          if (size === undefined) return false;
          files++;
          bytes += size;
          settings.onFile?.(path);
          return true;
        });
        if (id.gone) goneImages += id.gone.length;
        else if (present.length > 0) ids++;
      }
      if (settings.dryRun || due.length === 0) continue;
      const byId = new Map(due.map((d) => [d.gbifId, d]));
      const items = due.map((id) => ({ gbifId: id.gbifId, files: [], images: [], stale: pathsOf(settings.out, id) }));
      await settings.publisher.publish(items, (pruned) => ledger.recordPruned(pruned.map((i) => byId.get(i.gbifId) as PruneDue)));
    }
  }
  return { out: settings.out, dryRun: settings.dryRun, ids, goneImages, files, bytes, interrupted, elapsedMs: Math.round(performance.now() - started) };
}
