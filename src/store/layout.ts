/**
 * Where files go: `<out>/<id[:3]>/<id[3:6]>/<id>-NN.jpg`, NN the file's
 * number within its gbifID (from 00, in ingest order, a IIIF manifest's
 * canvases in its place; three digits past 99), and temporaries inside <out>
 * so a rename into place never crosses filesystems: each run has its own
 * folder, `<out>/.herbdl-tmp/<machine>~<pid>~<start>`, so no run (or worker
 * sharing <out>) ever sweeps away another live one's files.
 */
import { join } from 'node:path';

export const TEMP_FOLDER = '.herbdl-tmp';

export function finalPath(out: string, gbifId: number, fileIndex: number): string {
  const id = String(gbifId);
  const parts = [id.slice(0, 3), id.slice(3, 6)].filter((p) => p !== '');
  return join(out, ...parts, `${id}-${String(fileIndex).padStart(2, '0')}.jpg`);
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

let counter = 0;
/** A temporary for one image (`unit`: its imageIndex, or imageIndex.canvas for a IIIF part), in the run's folder. */
export function tempPath(folder: string, gbifId: number, unit: number | string): string {
  counter = (counter + 1) % 1e9;
  return join(folder, `${gbifId}-${unit}-${counter}.part`);
}
