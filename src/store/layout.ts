/**
 * Where files go: `<out>/<id[:3]>/<id[3:6]>/<id>-NN.jpg`, NN the file's
 * number within its gbifID (from 00, in ingest order, a IIIF manifest's
 * canvases in its place; three digits past 99), derivatives the same under
 * `<out>/w<width>/`, and temporaries inside <out>
 * so a rename into place never crosses filesystems: each run has its own
 * folder, `<out>/.herbdl-tmp/<machine>~<pid>~<start>`, so no run (or worker
 * sharing <out>) ever sweeps away another live one's files.
 */
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { WorkerId } from '../ledger/ledger.js';

export const TEMP_FOLDER = '.herbdl-tmp';

/** Where files that failed a check are moved (adopt, verify --repair), never deleted: `<out>/.herbdl-rejected/<reason>/<path under out>`. */
export const REJECTED_FOLDER = '.herbdl-rejected';

/** `<gbifID>-NN`: an image's file name without its `.jpg`, and its key in a packed set. */
export function imageName(gbifId: number, fileIndex: number): string {
  return `${gbifId}-${String(fileIndex).padStart(2, '0')}`;
}

export function finalPath(out: string, gbifId: number, fileIndex: number): string {
  const id = String(gbifId);
  const parts = [id.slice(0, 3), id.slice(3, 6)].filter((p) => p !== '');
  return join(out, ...parts, `${imageName(gbifId, fileIndex)}.jpg`);
}

/** A derivative's file: the same layout under `<out>/w<width>/`. */
export function derivativePath(out: string, width: number, gbifId: number, fileIndex: number): string {
  return finalPath(join(out, `w${width}`), gbifId, fileIndex);
}

export function tempRoot(out: string): string {
  return join(out, TEMP_FOLDER);
}

/** Who made a run's temporaries, read back from its folder's name. */
export interface TempOwner {
  readonly machine: string;
  readonly pid: number;
  readonly since: number;
}

const SEP = '~';

/** The folder of one run's temporaries. */
export function runTempFolder(out: string, owner: TempOwner): string {
  return join(tempRoot(out), [owner.machine.replaceAll(SEP, '_'), owner.pid, owner.since].join(SEP));
}

/** The owner a run's temp folder names, or undefined for anything else (a file an older herbdl left). */
export function tempOwner(name: string): TempOwner | undefined {
  const m = /^(.*)~([0-9]+)~([0-9]+)$/.exec(name);
  return m ? { machine: m[1] as string, pid: Number(m[2]), since: Number(m[3]) } : undefined;
}

/** A derivative's temporary: beside the image's own (`into`), so the publisher moves them together. */
export function derivativeTemp(into: string, width: number): string {
  return `${into}.w${width}`;
}

/**
 * Whether a temp folder's owner may still be running: on this machine, any
 * live process of that pid (another worker, or a run of another ledger
 * sharing --out); on another, a worker whose lease on the ledger is live.
 */
export function ownerMayLive(owner: TempOwner, liveElsewhere: readonly WorkerId[]): boolean {
  if (owner.machine !== hostname()) return liveElsewhere.some((w) => w.machine === owner.machine && w.pid === owner.pid && w.since === owner.since);
  try {
    process.kill(owner.pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

let counter = 0;
/** A temporary for one image (`unit`: its imageIndex, or imageIndex.canvas for a IIIF part), in the run's folder. */
export function tempPath(folder: string, gbifId: number, unit: number | string): string {
  counter = (counter + 1) % 1e9;
  return join(folder, `${gbifId}-${unit}-${counter}.part`);
}
