/**
 * The rows of an occurrence file, read where they lie in the bytes: an
 * occurrence.txt has some 259 columns and a label wants a few, so only the
 * wanted fields are decoded (splitting each line into all its columns made
 * a string of each, and the garbage held the process above 300 MB).
 */
import { InputError } from '../errors.js';

const TAB = 9;
const LF = 10;
const CR = 13;

/** Where the gbifID and each wanted field are in a file's rows, from its header line. */
export interface OccurrenceColumns {
  /** The fields as the header spells them, in the order asked. */
  readonly names: readonly string[];
  /** Columns to decode, ascending (the gbifID's among them). */
  readonly columns: Int32Array;
  /** For each of `columns`, its place: -1 for the gbifID, else the field's index in `names`. */
  readonly slots: Int32Array;
}

export function occurrenceColumns(file: string, header: readonly string[], wanted: readonly string[], optional: boolean): OccurrenceColumns {
  const find = (name: string) => {
    const exact = header.indexOf(name);
    return exact >= 0 ? exact : header.findIndex((h) => h.toLowerCase() === name.toLowerCase());
  };
  const id = find('gbifID');
  if (id < 0 && header.length === 1 && (header[0] as string).includes(',')) throw new InputError(file, 'its header line is separated by commas, not tabs as GBIF writes its files', 'bad_input');
  if (id < 0) throw new InputError(file, 'its header line has no gbifID column: not the occurrence file of a GBIF download', 'bad_input');
  const found: [column: number, slot: number][] = [[id, -1]];
  const names: string[] = [];
  for (const name of wanted) {
    const at = find(name);
    if (at < 0) {
      if (optional) continue;
      const near = header.filter((h) => h.toLowerCase().includes(name.toLowerCase().slice(0, 5))).slice(0, 5);
      throw new InputError(file, `its header line has no ${name} column (it has ${header.length} columns${near.length > 0 ? `; near it: ${near.join(', ')}` : ''}); name fields as the header does`, 'bad_input');
    }
    // A field named twice (family, Family) is one column, kept once.
    if (found.some(([column]) => column === at)) continue;
    found.push([at, names.length]);
    names.push(header[at] as string);
  }
  if (names.length === 0) throw new InputError(file, `its header line has none of the fields ${wanted.join(', ')}; choose some with --fields`, 'bad_input');
  found.sort((a, b) => a[0] - b[0]);
  return { names, columns: Int32Array.from(found, (f) => f[0]), slots: Int32Array.from(found, (f) => f[1]) };
}

/**
 * Reads the row in `buf[start, end)` (a line, its line end excluded): its
 * gbifID's text and each field's value (trimmed) into `values`; returns
 * the gbifID's text, or undefined when the row has fewer columns than the
 * last wanted one.
 */
export function readOccurrenceRow(buf: Buffer, start: number, end: number, at: OccurrenceColumns, values: string[]): string | undefined {
  if (end > start && buf[end - 1] === CR) end--;
  const { columns, slots } = at;
  let id: string | undefined;
  let column = 0;
  let k = 0;
  let fieldStart = start;
  for (let i = start; i <= end; i++) {
    if (i !== end && buf[i] !== TAB) continue;
    if (column === columns[k]) {
      const value = buf.toString('utf8', fieldStart, i).trim();
      const slot = slots[k] as number;
      if (slot < 0) id = value;
      else values[slot] = value;
      if (++k === columns.length) return id;
    }
    column++;
    fieldStart = i + 1;
  }
  return undefined;
}

/** The next line end at or after `from` in `buf`, or its length. */
export function lineEnd(buf: Buffer, from: number): number {
  const at = buf.indexOf(LF, from);
  return at < 0 ? buf.length : at;
}
