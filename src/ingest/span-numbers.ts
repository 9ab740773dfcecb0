/**
 * Numbers for stretches of a chunk's text (a host, a row's kind or rights
 * columns). A dataset's rows repeat them, so a stretch equal to the row
 * before's costs a compare; any other is looked up.
 *
 * In a chunk that is all ASCII (the usual GBIF file), a character is a byte,
 * so a stretch is looked up by its bytes where they lie, in a table of its
 * own: hashed and compared four bytes at a time, nothing cut out. The other
 * way, a string cut out and looked up in the numbering's Map, costs V8 a
 * hash and a compare a character at a time, through a sliced string: about
 * 2.5 times as long for a rights stretch of 110 characters, and it set the
 * pace of a PostgreSQL ingest (whose parsing thread is its slowest stage).
 * Other chunks go the Map's way. The Map decides every number (the table
 * only remembers what it said), so both ways number a stretch alike.
 */

/** Slots the table starts with: a power of two, doubled whenever it is half full (a kind has a few stretches, rights thousands). */
const FIRST_SLOTS = 1 << 10;
const EMPTY = -1;

interface Table {
  readonly mask: number;
  /** Per slot: the stretch's hash, its length (EMPTY: the slot is free), where its bytes are kept, its number. */
  readonly hashes: Int32Array;
  readonly lengths: Int32Array;
  readonly offsets: Int32Array;
  readonly numbers: Int32Array;
  count: number;
}

function newTable(slots: number): Table {
  return { mask: slots - 1, hashes: new Int32Array(slots), lengths: new Int32Array(slots).fill(EMPTY), offsets: new Int32Array(slots), numbers: new Int32Array(slots), count: 0 };
}

export class SpanNumbers {
  private lastText: string | undefined;
  private lastNumber = 0;
  /** The current chunk's bytes when it is all ASCII, with a view to read them four at a time. */
  private bytes: Uint8Array | undefined;
  private view: DataView | undefined;
  /** The byte table, made on first use. */
  private table: Table | undefined;
  private kept = new Uint8Array(1 << 16);
  private keptView = new DataView(this.kept.buffer);
  private keptBytes = 0;
  /** The slot of the last stretch found by its bytes, or EMPTY. */
  private lastSlot = EMPTY;

  constructor(private readonly numberOf: (key: string) => number) {}

  /** The chunk whose stretches come next: its bytes when it is all ASCII, else undefined. */
  chunk(ascii: Uint8Array | undefined): void {
    this.bytes = ascii;
    this.view = ascii && new DataView(ascii.buffer, ascii.byteOffset, ascii.byteLength);
    this.lastText = undefined;
    this.lastSlot = EMPTY;
  }

  /** The number of text[start, end). */
  of(text: string, start: number, end: number): number {
    if (this.bytes) return this.ofBytes(text, start, end);
    const last = this.lastText;
    if (last !== undefined && last.length === end - start && text.startsWith(last, start)) return this.lastNumber;
    // A view of the chunk is enough here: it is replaced by the next row that differs.
    this.lastText = text.slice(start, end);
    this.lastNumber = this.numberOf(this.lastText);
    return this.lastNumber;
  }

  private ofBytes(text: string, start: number, end: number): number {
    const length = end - start;
    let table = (this.table ??= newTable(FIRST_SLOTS));
    const last = this.lastSlot;
    if (last !== EMPTY && table.lengths[last] === length && this.sameBytes(table.offsets[last] as number, start, length)) return table.numbers[last] as number;
    const hash = this.hash(start, end);
    let slot = hash & table.mask;
    for (;;) {
      const kept = table.lengths[slot] as number;
      if (kept === EMPTY) break;
      if (kept === length && table.hashes[slot] === hash && this.sameBytes(table.offsets[slot] as number, start, length)) {
        this.lastSlot = slot;
        return table.numbers[slot] as number;
      }
      slot = (slot + 1) & table.mask;
    }
    const number = this.numberOf(text.slice(start, end));
    if (2 * (table.count + 1) > table.mask + 1) {
      table = this.grow(table);
      slot = freeSlot(table, hash);
    }
    table.hashes[slot] = hash;
    table.lengths[slot] = length;
    table.offsets[slot] = this.keep(start, length);
    table.numbers[slot] = number;
    table.count++;
    this.lastSlot = slot;
    return number;
  }

  /** The table at twice the slots, every stretch in it again. */
  private grow(old: Table): Table {
    const table = newTable(2 * (old.mask + 1));
    for (let i = 0; i <= old.mask; i++) {
      if (old.lengths[i] === EMPTY) continue;
      const slot = freeSlot(table, old.hashes[i] as number);
      table.hashes[slot] = old.hashes[i] as number;
      table.lengths[slot] = old.lengths[i] as number;
      table.offsets[slot] = old.offsets[i] as number;
      table.numbers[slot] = old.numbers[i] as number;
    }
    table.count = old.count;
    this.table = table;
    return table;
  }

  private hash(start: number, end: number): number {
    const view = this.view as DataView;
    let h = end - start;
    let at = start;
    for (; at + 4 <= end; at += 4) {
      h = Math.imul(h ^ view.getInt32(at, true), 0x9e3779b1);
      h ^= h >>> 15;
    }
    const bytes = this.bytes as Uint8Array;
    for (; at < end; at++) h = Math.imul(h ^ (bytes[at] as number), 0x01000193);
    return h ^ (h >>> 16);
  }

  private sameBytes(offset: number, start: number, length: number): boolean {
    const view = this.view as DataView;
    const kept = this.keptView;
    let i = 0;
    for (; i + 4 <= length; i += 4) if (kept.getInt32(offset + i, true) !== view.getInt32(start + i, true)) return false;
    const bytes = this.bytes as Uint8Array;
    for (; i < length; i++) if (this.kept[offset + i] !== bytes[start + i]) return false;
    return true;
  }

  /** Copies a new stretch's bytes to keep (its chunk is let go after this one); returns where. */
  private keep(start: number, length: number): number {
    if (this.keptBytes + length > this.kept.length) {
      const grown = new Uint8Array(Math.max(this.kept.length * 2, this.keptBytes + length));
      grown.set(this.kept.subarray(0, this.keptBytes));
      this.kept = grown;
      this.keptView = new DataView(grown.buffer);
    }
    const offset = this.keptBytes;
    this.kept.set((this.bytes as Uint8Array).subarray(start, start + length), offset);
    this.keptBytes += length;
    return offset;
  }
}

/** The first free slot from where `hash` falls. */
function freeSlot(table: Table, hash: number): number {
  let slot = hash & table.mask;
  while (table.lengths[slot] !== EMPTY) slot = (slot + 1) & table.mask;
  return slot;
}
