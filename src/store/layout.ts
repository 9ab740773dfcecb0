/**
 * Where files go: `<out>/<id[:3]>/<id[3:6]>/<id>-NN.jpg`, NN the file's
 * number within its gbifID (from 00, in ingest order, a IIIF manifest's
 * canvases in its place; three digits past 99), and a temporary
 * folder inside <out> so a rename into place never crosses filesystems.
 */
import { join } from 'node:path';

export const TEMP_FOLDER = '.herbdl-tmp';

export function finalPath(out: string, gbifId: number, fileIndex: number): string {
  const id = String(gbifId);
  const parts = [id.slice(0, 3), id.slice(3, 6)].filter((p) => p !== '');
  return join(out, ...parts, `${id}-${String(fileIndex).padStart(2, '0')}.jpg`);
}

export function tempFolder(out: string): string {
  return join(out, TEMP_FOLDER);
}

let counter = 0;
/** A temporary for one image (`unit`: its imageIndex, or imageIndex.canvas for a IIIF part). */
export function tempPath(out: string, gbifId: number, unit: number | string): string {
  counter = (counter + 1) % 1e9;
  return join(out, TEMP_FOLDER, `${gbifId}-${unit}-${process.pid}-${counter}.part`);
}
