/**
 * Walking a tree of images an earlier download left, in constant memory:
 * folders are read as streams (opendir), never listed whole, and a gbifID's
 * files are grouped within the one folder that holds them all.
 *
 * - herbdl's layout (`<id[:3]>/<id[3:6]>/<id>-NN.jpg`, which the lab's last
 *   script also wrote): every file of a gbifID is in one leaf folder, so a
 *   leaf is read, grouped by gbifID and handed on; the levels above are
 *   walked in name order (at most 1,000 names each).
 * - flat (`<gbifID>.jpg` in one folder, the older scripts'): each file is its
 *   gbifID's first image, handed on in batches as the folder streams by.
 *
 * A file whose name or place does not fit the layout is a stray: counted and
 * left alone, never adopted.
 */
import { opendir } from 'node:fs/promises';
import { join } from 'node:path';
import { finalPath, REJECTED_FOLDER, TEMP_FOLDER } from '../store/layout.js';

/** A gbifID found on disk, with its files by NN. */
export interface FoundId {
  readonly gbifId: number;
  readonly files: ReadonlyMap<number, string>;
}

export interface WalkBatch {
  readonly ids: readonly FoundId[];
  /** Files that do not fit the layout (misnamed or misplaced), relative to the root. */
  readonly strays: readonly string[];
}

const LAYOUT_FILE = /^([1-9][0-9]*)-([0-9]{2,})\.jpg$/;
const FLAT_FILE = /^([1-9][0-9]*)\.jpg$/i;
const PART = /^[0-9]{1,3}$/;

/** Entries of a folder as it streams: name, and whether it is a folder. */
async function* entries(dir: string): AsyncGenerator<{ name: string; isDir: boolean }> {
  for await (const e of await opendir(dir, { bufferSize: 256 })) yield { name: e.name, isDir: e.isDirectory() };
}

async function sortedEntries(dir: string): Promise<{ name: string; isDir: boolean }[]> {
  const list: { name: string; isDir: boolean }[] = [];
  for await (const e of entries(dir)) list.push(e);
  return list.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

function skipped(name: string): boolean {
  return name === TEMP_FOLDER || name === REJECTED_FOLDER;
}

/** Groups one folder's layout files by gbifID (a file is taken only where finalPath would put it). */
function group(root: string, dir: string, names: readonly string[], rel: string): WalkBatch {
  const byId = new Map<number, Map<number, string>>();
  const strays: string[] = [];
  for (const name of names) {
    const m = LAYOUT_FILE.exec(name);
    const gbifId = m ? Number(m[1]) : NaN;
    const nn = m ? Number(m[2]) : NaN;
    const path = join(dir, name);
    if (!m || !Number.isSafeInteger(gbifId) || finalPath(root, gbifId, nn) !== path) {
      strays.push(join(rel, name));
      continue;
    }
    let files = byId.get(gbifId);
    if (!files) byId.set(gbifId, (files = new Map()));
    files.set(nn, path);
  }
  const ids = [...byId].sort((a, b) => a[0] - b[0]).map(([gbifId, files]) => ({ gbifId, files }));
  return { ids, strays };
}

/**
 * herbdl's layout, a folder at a time: `<root>/<abc>/` holds the files of
 * gbifIDs of up to three digits and the folders `<def>/` of longer ones.
 */
export async function* walkLayout(root: string): AsyncGenerator<WalkBatch> {
  for (const top of await sortedEntries(root)) {
    if (!top.isDir) {
      if (!skipped(top.name)) yield { ids: [], strays: [top.name] };
      continue;
    }
    if (skipped(top.name)) continue;
    if (!PART.test(top.name)) {
      yield { ids: [], strays: [top.name + '/'] };
      continue;
    }
    const topDir = join(root, top.name);
    const files: string[] = [];
    const subs: string[] = [];
    for (const e of await sortedEntries(topDir)) (e.isDir ? subs : files).push(e.name);
    if (files.length > 0) yield group(root, topDir, files, top.name);
    for (const sub of subs) {
      if (!PART.test(sub)) {
        yield { ids: [], strays: [join(top.name, sub) + '/'] };
        continue;
      }
      const leaf = join(topDir, sub);
      const names: string[] = [];
      const strays: string[] = [];
      for await (const e of entries(leaf)) (e.isDir ? strays : names).push(e.isDir ? join(top.name, sub, e.name) + '/' : e.name);
      const batch = group(root, leaf, names, join(top.name, sub));
      yield { ids: batch.ids, strays: [...strays, ...batch.strays] };
    }
  }
}

/** A flat folder of `<gbifID>.jpg`, in batches of `size` as it streams (in the order the file system gives). */
export async function* walkFlat(root: string, size = 256): AsyncGenerator<WalkBatch> {
  let ids: FoundId[] = [];
  let strays: string[] = [];
  for await (const e of entries(root)) {
    if (skipped(e.name)) continue;
    const m = e.isDir ? null : FLAT_FILE.exec(e.name);
    const gbifId = m ? Number(m[1]) : NaN;
    if (!m || !Number.isSafeInteger(gbifId)) strays.push(e.isDir ? e.name + '/' : e.name);
    else ids.push({ gbifId, files: new Map([[0, join(root, e.name)]]) });
    if (ids.length >= size || strays.length >= size) {
      yield { ids, strays };
      ids = [];
      strays = [];
    }
  }
  if (ids.length > 0 || strays.length > 0) yield { ids, strays };
}
