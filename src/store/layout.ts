/**
 * Where files go: `<out>/<id[:3]>/<id[3:6]>/<id>-NN.jpg`, NN the image's
 * index (from 00, in ingest order; three digits past 99), and a temporary
 * folder inside <out> so a rename into place never crosses filesystems.
 */
import { join } from 'node:path';

export const TEMP_FOLDER = '.herbdl-tmp';

export function finalPath(out: string, gbifId: number, imageIndex: number): string {
  const id = String(gbifId);
  const parts = [id.slice(0, 3), id.slice(3, 6)].filter((p) => p !== '');
  return join(out, ...parts, `${id}-${String(imageIndex).padStart(2, '0')}.jpg`);
}

export function tempFolder(out: string): string {
  return join(out, TEMP_FOLDER);
}

let counter = 0;
export function tempPath(out: string, gbifId: number, imageIndex: number): string {
  counter = (counter + 1) % 1e9;
  return join(out, TEMP_FOLDER, `${gbifId}-${imageIndex}-${process.pid}-${counter}.part`);
}
