/**
 * `herbdl adopt`: takes over the images an earlier download left on disk, so
 * they are not fetched again. For each gbifID the walk finds (walk.ts) that
 * the ledger has pending or failed, it claims the ID (a lease, on a shared
 * ledger), checks that the files are exactly the ones its ingested images
 * give it (`-00` to the last NN) and that each passes the check `run` applies
 * to a JPEG it keeps, then marks it done with each file's bytes, sha256 and
 * size. A file that fails is moved aside with its reason (the gbifID stays
 * pending, for `run`); a gbifID with files missing or beyond its last NN
 * stays pending and is counted.
 *
 * A flat folder (`<gbifID>.jpg`) gives each gbifID's first image: linked into
 * the layout as `-00` and recorded as stored; the gbifID is done if that is
 * its only image, else a later run fetches only the others.
 *
 * Constant memory (a leaf folder or a batch at a time), validation on every
 * core, a few batches in flight. It resumes by running again: done IDs are
 * skipped at the cost of a lookup, and rejected files are already aside.
 */
import { InFlight } from '../in-flight.js';
import type { ClaimedId, DownloadLedger, FetchedImage } from '../ledger/ledger.js';
import type { InspectedJpeg } from '../validate/inspect-jpeg.js';
import type { Validator } from '../validate/validator-pool.js';
import { linkIntoLayout, makeDurable } from './place.js';
import { moveAside } from '../store/set-aside.js';
import { walkFlat, walkLayout, type FoundId, type WalkBatch } from './walk.js';

export type AdoptLayout = 'herbdl' | 'flat';

export interface AdoptSummary {
  readonly dir: string;
  readonly layout: AdoptLayout;
  /** gbifIDs marked done, and their files. */
  readonly adopted: number;
  readonly adoptedFiles: number;
  /** Flat layout: gbifIDs with more images than the one file, whose first image is now stored. */
  readonly firstStored: number;
  /** gbifIDs with fewer files than images: pending, for run. */
  readonly partial: number;
  /** gbifIDs with files beyond their last NN (all their files moved aside as `extra`): pending, for run. */
  readonly extra: number;
  /** gbifIDs with a file that failed its check: pending, for run. */
  readonly rejectedIds: number;
  /** Files moved to .herbdl-rejected/<reason>/, by reason. */
  readonly rejected: Readonly<Record<string, number>>;
  readonly alreadyDone: number;
  readonly excluded: number;
  /** gbifIDs on disk that the ledger does not have: left alone. */
  readonly notInLedger: number;
  /** gbifIDs another live worker holds now: left to it. */
  readonly held: number;
  /** Files whose name or place does not fit the layout: left alone. */
  readonly strays: number;
  readonly filesChecked: number;
  readonly interrupted: boolean;
  readonly elapsedMs: number;
}

export interface AdoptSettings {
  readonly dir: string;
  readonly layout: AdoptLayout;
  /** herbdl's layout: where flat files are linked into (for the herbdl layout, the tree itself). */
  readonly out: string;
  /** This process's temporaries under `out` (runTempFolder). */
  readonly temps: string;
  readonly validator: Validator;
  readonly signal?: AbortSignal;
  readonly onProgress?: (summary: AdoptSummary) => void;
}

/** gbifIDs per ledger round trip; batches in flight at once (to keep validation busy across the ledger's turns). */
const BATCH = 256;
const IN_FLIGHT = 3;

type Counts = { -readonly [K in keyof AdoptSummary]: AdoptSummary[K] } & { rejected: Record<string, number> };

/** A file checked: what it is, or why it is not kept. */
type Checked = { ok: InspectedJpeg } | { reason: string };

export async function adopt(ledger: DownloadLedger, settings: AdoptSettings): Promise<AdoptSummary> {
  const started = performance.now();
  const counts: Counts = {
    dir: settings.dir, layout: settings.layout, adopted: 0, adoptedFiles: 0, firstStored: 0, partial: 0, extra: 0, rejectedIds: 0, rejected: {},
    alreadyDone: 0, excluded: 0, notInLedger: 0, held: 0, strays: 0, filesChecked: 0, interrupted: false, elapsedMs: 0,
  };
  const snapshot = (): AdoptSummary => ({ ...counts, rejected: { ...counts.rejected }, elapsedMs: Math.round(performance.now() - started) });

  const check = async (path: string): Promise<Checked> => {
    try {
      const ok = await settings.validator.inspect(path);
      counts.filesChecked++;
      return { ok };
    } catch (err) {
      const code = (err as { code?: string }).code;
      // A file-system error is this machine's problem, not the file's: stop, as run does.
      if (!code || /^E[A-Z]+$/.test(code)) throw err;
      counts.filesChecked++;
      counts.rejected[code] = (counts.rejected[code] ?? 0) + 1;
      await moveAside(settings.dir, path, code);
      return { reason: code };
    }
  };

  /** One batch: states, claims, checks, then done / stored / handed back, a transaction each. */
  const adoptBatch = async (found: readonly FoundId[]): Promise<void> => {
    const states = await ledger.idStates(found.map((f) => f.gbifId));
    const candidates: number[] = [];
    for (const f of found) {
      const state = states.get(f.gbifId);
      if (state === undefined) counts.notInLedger++;
      else if (state === 'done') counts.alreadyDone++;
      else if (state === 'excluded') counts.excluded++;
      else candidates.push(f.gbifId);
    }
    const claimed = await ledger.claimIds(candidates);
    counts.held += candidates.length - claimed.length;
    const byId = new Map(found.map((f) => [f.gbifId, f.files]));
    const done: { gbifId: number; images: FetchedImage[] }[] = [];
    const stored: { gbifId: number; images: FetchedImage[] }[] = [];
    const durable: string[] = [];
    await Promise.all(
      claimed.map(async (id) => {
        const files = byId.get(id.gbifId) as ReadonlyMap<number, string>;
        const n = id.images.length;
        // Each image's NN is its imageIndex (a newer export's removals leave gaps; adopt takes no IIIF sets).
        const nns = id.images.map((image) => image.imageIndex);
        if (settings.layout === 'herbdl') {
          if ([...files.keys()].some((nn) => !nns.includes(nn))) {
            // A set the ledger does not know (an older export's, or a manifest's canvases): which file is which
            // image is unknown, so all of them go aside, and the set run publishes is all the tree shows.
            for (const path of files.values()) await moveAside(settings.dir, path, 'extra');
            counts.rejected.extra = (counts.rejected.extra ?? 0) + files.size;
            return void counts.extra++;
          }
          if (files.size < n) return void counts.partial++;
        }
        const wanted = settings.layout === 'flat' ? [files.get(0) as string] : nns.map((nn) => files.get(nn) as string);
        const checked = await Promise.all(wanted.map(check));
        if (checked.some((c) => 'reason' in c)) return void counts.rejectedIds++;
        const paths = settings.layout === 'flat' ? [await linkIntoLayout(wanted[0] as string, settings.out, settings.temps, id.gbifId, nns[0])] : wanted;
        const images = checked.map((c, k) => outcome(id, k, (c as { ok: InspectedJpeg }).ok));
        durable.push(...paths);
        if (images.length === n) done.push({ gbifId: id.gbifId, images });
        else stored.push({ gbifId: id.gbifId, images });
      }),
    );
    await makeDurable(durable);
    // One that gained an image meanwhile (an ingest beside the adopt) is left pending, its images stored.
    const unfinished = await ledger.recordDone(done);
    await ledger.recordStored(stored);
    const settled = new Set(done.map((d) => d.gbifId));
    await ledger.handBack(claimed.filter((c) => !settled.has(c.gbifId)).map((c) => c.gbifId));
    counts.adopted += done.length - unfinished.length;
    counts.adoptedFiles += done.reduce((a, d) => a + d.images.length, 0);
    counts.firstStored += stored.length;
    settings.onProgress?.(snapshot());
  };

  const batches = new InFlight(IN_FLIGHT);
  const walk: AsyncGenerator<WalkBatch> = settings.layout === 'flat' ? walkFlat(settings.dir, BATCH) : walkLayout(settings.dir);
  outer: for await (const batch of walk) {
    counts.strays += batch.strays.length;
    for (let at = 0; at < batch.ids.length; at += BATCH) {
      if (settings.signal?.aborted || batches.failed) break outer;
      await batches.add(adoptBatch(batch.ids.slice(at, at + BATCH)));
    }
  }
  await batches.drain();
  counts.interrupted = settings.signal?.aborted ?? false;
  return snapshot();
}

/** What the ledger records of an adopted file (the gbifID's `k`th image): its own bytes and size; never fetched, so no HTTP status (0). */
function outcome(id: ClaimedId, k: number, file: InspectedJpeg): FetchedImage {
  const image = id.images[k] as ClaimedId['images'][number];
  return {
    imageId: image.imageId,
    fileIndex: image.imageIndex,
    httpStatus: 0,
    finalUrl: image.url,
    contentType: 'image/jpeg',
    bytes: file.bytes,
    sha256: file.sha256,
    width: file.width,
    height: file.height,
    receivedFormat: 'jpeg',
  };
}
