/**
 * What kind of set a folder holds, as its index.json says: one width (the
 * originals, or one derivative), one split of one set of shares, one set of
 * label fields. A set is carried on only as the same kind: a training
 * loader reads every shard alike, and other shares would move gbifIDs
 * already packed in one split into another.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { UsageError } from '../errors.js';

export interface SetKind {
  /** A derivative width, or 0 for the originals (and for sets from before widths). */
  readonly width: number;
  /** Which split of which shares (`val` of `val=5,test=5,train=90`), for a split set. */
  readonly split?: { readonly split: string; readonly splits: string };
  /** The label fields each .json gives (none for sets from before labels). */
  readonly labels: readonly string[];
}

/** What `dir`'s index.json says it holds (a set with no index is taken as a plain one). */
export function packedKind(dir: string): SetKind {
  const index = join(dir, 'index.json');
  if (!existsSync(index)) return { width: 0, labels: [] };
  const read = JSON.parse(readFileSync(index, 'utf8')) as { width?: number; split?: string; splits?: string; labels?: string[] };
  return {
    width: Number(read.width ?? 0),
    ...(read.split !== undefined && read.splits !== undefined ? { split: { split: read.split, splits: read.splits } } : {}),
    labels: read.labels ?? [],
  };
}

const describeWidth = (width: number) => (width > 0 ? `the w${width} derivatives` : 'the originals');
const describeSplit = (s: SetKind['split']) => (s ? `split ${s.split} of --split ${s.splits}` : 'a set with no split');
const describeLabels = (labels: readonly string[]) => (labels.length > 0 ? `labels ${labels.join(', ')}` : 'no labels');

/** Refuses, in one line, to carry `dir`'s set on as another kind. */
export function expectKind(dir: string, wanted: SetKind): void {
  const was = packedKind(dir);
  const refuse = (held: string, asked: string) => new UsageError(`${dir} holds ${held}, not ${asked}: pack into another folder`);
  if (was.width !== wanted.width) throw refuse(`shards of ${describeWidth(was.width)}`, `of ${describeWidth(wanted.width)}`);
  if (was.split?.split !== wanted.split?.split || was.split?.splits !== wanted.split?.splits) throw refuse(describeSplit(was.split), describeSplit(wanted.split));
  if (was.labels.join() !== wanted.labels.join()) throw refuse(`shards whose .json give ${describeLabels(was.labels)}`, `${describeLabels(wanted.labels)} as the ledger has now (herbdl labels)`);
}
