/** Files that failed a check are moved aside, never deleted: the user may want to see them. */
import { mkdir, rename } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { REJECTED_FOLDER } from './layout.js';

/** Moves `path` (under `root`) to `<root>/.herbdl-rejected/<reason>/<its path under root>`; returns where it went. */
export async function moveAside(root: string, path: string, reason: string): Promise<string> {
  const to = join(root, REJECTED_FOLDER, reason, relative(root, path));
  await mkdir(dirname(to), { recursive: true });
  await rename(path, to);
  return to;
}
