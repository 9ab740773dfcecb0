/**
 * `herbdl derive <widths>`: derivatives for what is already stored. Walks
 * the done gbifIDs in key order, a batch per ledger round trip, and for each
 * one that lacks some of the widths makes them from its stored files (one
 * decode per file for all its missing widths, on the validation workers),
 * then publishes them as `run` publishes a gbifID: all its files at once,
 * under an intent, then recorded. A width a gbifID already has is never
 * made again, so a second `derive` (after Ctrl-C, kill -9, or with more
 * widths) does only what is missing.
 *
 * A gbifID whose stored file is gone or no longer decodes gets no
 * derivatives and is counted; its originals are left as they are.
 */
import { InFlight } from '../in-flight.js';
import { DonePass } from '../ledger/done-pass.js';
import type { DerivationDue, DownloadLedger } from '../ledger/ledger.js';
import { derivativePath, derivativeTemp, finalPath, tempPath } from '../store/layout.js';
import type { Publisher, PublishItem } from '../store/publisher.js';
import type { Validator } from '../validate/validator-pool.js';

export interface DeriveSettings {
  readonly widths: readonly number[];
  /** The images folder (run's --out). */
  readonly out: string;
  /** This process's temporaries under `out`. */
  readonly temps: string;
  readonly validator: Validator;
  readonly publisher: Publisher;
  readonly signal?: AbortSignal;
  readonly onProgress?: (summary: DeriveSummary) => void;
  /** Once, when done gbifIDs another worker holds are all that is left: how many (done-pass.ts). */
  readonly onWait?: (held: number) => void;
}

export interface DeriveSummary {
  readonly out: string;
  readonly widths: readonly number[];
  /** Done gbifIDs found lacking some of the widths, and those that got them now. */
  readonly due: number;
  readonly derived: number;
  /** Derivative files published now. */
  readonly files: number;
  /** gbifIDs with a stored file missing from the tree: no derivatives (verify --repair, then run, fetches it again). */
  readonly missing: number;
  /** gbifIDs with a stored file that no longer decodes. */
  readonly broken: number;
  readonly interrupted: boolean;
  readonly elapsedMs: number;
}

/** Done gbifIDs per ledger round trip, and batches being made at once (to keep every validation worker busy). */
const BATCH = 128;
const IN_FLIGHT = 3;

type Counts = { -readonly [K in keyof DeriveSummary]: DeriveSummary[K] };

export async function derive(ledger: DownloadLedger, settings: DeriveSettings): Promise<DeriveSummary> {
  const started = performance.now();
  const counts: Counts = { out: settings.out, widths: settings.widths, due: 0, derived: 0, files: 0, missing: 0, broken: 0, interrupted: false, elapsedMs: 0 };
  const snapshot = (): DeriveSummary => ({ ...counts, elapsedMs: Math.round(performance.now() - started) });

  /** One gbifID's missing widths, every file: the item to publish, or undefined when a file is missing or broken. */
  const make = async (id: DerivationDue): Promise<PublishItem | undefined> => {
    const files: { temp: string; final: string }[] = [];
    let failed: string | undefined;
    await Promise.all(
      id.files.map(async (nn) => {
        const into = tempPath(settings.temps, id.gbifId, nn);
        for (const w of id.missing) files.push({ temp: derivativeTemp(into, w), final: derivativePath(settings.out, w, id.gbifId, nn) });
        try {
          await settings.validator.derive(finalPath(settings.out, id.gbifId, nn), id.missing, into);
        } catch (err) {
          const code = (err as { code?: string }).code;
          // A file-system error other than the file being gone is this machine's problem: stop.
          if (code === 'ENOENT') failed ??= 'missing';
          else if (!code || /^E[A-Z]+$/.test(code)) throw err;
          else failed ??= 'broken';
        }
      }),
    );
    if (!failed && id.files.length > 0) return { gbifId: id.gbifId, files, images: [], widths: id.missing };
    await settings.publisher.discard(files.map((f) => f.temp));
    if (failed === 'missing') counts.missing++;
    else counts.broken++;
    return undefined;
  };

  const deriveBatch = async (due: readonly DerivationDue[]): Promise<void> => {
    const items = (await Promise.all(due.map(make))).filter((item): item is PublishItem => item !== undefined);
    // A gbifID left out (a file missing or broken) is handed back: on a shared ledger this derive held it.
    const made = new Set(items.map((i) => i.gbifId));
    await ledger.handBack(due.filter((d) => !made.has(d.gbifId)).map((d) => d.gbifId));
    await settings.publisher.publish(items, (published) => ledger.recordDerived(published.map((i) => ({ gbifId: i.gbifId, widths: i.widths ?? [] }))));
    counts.derived += items.length;
    counts.files += items.reduce((n, i) => n + i.files.length, 0);
    settings.onProgress?.(snapshot());
  };

  const batches = new InFlight(IN_FLIGHT);
  const pass = new DonePass((after, limit, only) => ledger.derivationsDue(settings.widths, after, limit, only), BATCH, -1, settings.signal, settings.onWait);
  while (!settings.signal?.aborted && !batches.failed) {
    const due = await pass.next();
    if (due === undefined) break;
    counts.due += due.length;
    await batches.add(deriveBatch(due));
  }
  await batches.drain();
  counts.interrupted = settings.signal?.aborted ?? false;
  return snapshot();
}
