/**
 * Every Huffman-coded block of a baseline JPEG walked in JS, without
 * decoding a pixel: the default check of a JPEG kept as it is.
 *
 * Why not libvips: on a 400 x 600 sheet, setting up and tearing down a
 * sharp pipeline costs three times the decode itself (about 2.4 ms, of
 * which libjpeg's own work is about 0.5 ms, profiled), and libjpeg-turbo
 * reports much of the damage it meets only as warnings that libvips shares
 * out to whichever pipeline of the process ends next (decode-warnings.ts),
 * so every decode had to run on one thread. This walk reads exactly what a
 * decode reads, the entropy-coded data to its last block, in about 0.7 ms
 * for a 400 x 600 sheet and 11 ms for a 1600 x 2400 one (bench:damage), on
 * any thread, and it finds more damage than libjpeg-turbo does:
 * - a code that is in no Huffman table ("bad Huffman code": libjpeg-turbo's
 *   fast path decodes it as zero without a word);
 * - data that ends before the last block ("premature end of data segment");
 * - a restart marker out of turn, or bytes left before one;
 * - whole bytes left after the last block of a scan ("extraneous bytes",
 *   which libjpeg-turbo reports only when its read-ahead has not taken them);
 * - a Huffman table that is no prefix code, a segment longer than the file,
 *   no end-of-image marker after the last scan.
 * A JPEG it does not read (progressive, arithmetic-coded, lossless,
 * 12-bit, a table or sampling it does not expect) is `unread`: libvips
 * decides those, as before.
 */

export type JpegScan =
  | { readonly verdict: 'whole' }
  | { readonly verdict: 'damaged'; readonly why: string }
  | { readonly verdict: 'unread'; readonly why: string };

const WHOLE: JpegScan = { verdict: 'whole' };
const damaged = (why: string): JpegScan => ({ verdict: 'damaged', why });
const unread = (why: string): JpegScan => ({ verdict: 'unread', why });

/** Bits a code is looked up by at once; longer codes (rare) are walked bit by bit. */
const LOOKUP_BITS = 9;

/**
 * A Huffman table made for skipping, not decoding: for each 9-bit prefix,
 * the bits a symbol takes with the coefficient bits that follow it, and how
 * far it moves through the block's 64 coefficients (an AC run, 16 for ZRL,
 * 64 for end-of-block; 1 for a DC symbol). 0: a code longer than 9 bits.
 */
interface SkipTable {
  readonly lookup: Int32Array;
  readonly maxCode: Int32Array;
  readonly valueOffset: Int32Array;
  readonly symbols: Uint8Array;
  readonly ac: boolean;
}

function skipEntry(symbol: number, codeLength: number, ac: boolean): number {
  const size = symbol & 15;
  const run = symbol >> 4;
  const step = !ac ? 1 : size !== 0 ? run + 1 : run === 15 ? 16 : 64;
  return (step << 5) | (codeLength + size);
}

/** As libjpeg's jpeg_make_d_derived_tbl, which refuses the same tables. */
function skipTable(counts: Uint8Array, symbols: Uint8Array, ac: boolean): SkipTable | string {
  if (symbols.length > 256) return 'a Huffman table of more than 256 symbols';
  if (!ac && symbols.some((s) => s > 15)) return 'a DC Huffman table with a symbol over 15';
  const lookup = new Int32Array(1 << LOOKUP_BITS);
  const maxCode = new Int32Array(18).fill(-1);
  const valueOffset = new Int32Array(17);
  let code = 0;
  let k = 0;
  for (let length = 1; length <= 16; length++) {
    const count = counts[length - 1] as number;
    valueOffset[length] = k - code;
    for (let i = 0; i < count; i++, code++, k++) {
      if (length > LOOKUP_BITS) continue;
      const shift = LOOKUP_BITS - length;
      lookup.fill(skipEntry(symbols[k] as number, length, ac), code << shift, (code + 1) << shift);
    }
    if (count > 0) maxCode[length] = code - 1;
    if (code > 1 << length) return 'a Huffman table that is no prefix code';
    code <<= 1;
  }
  maxCode[17] = 0x7fffffff;
  return { lookup, maxCode, valueOffset, symbols, ac };
}

/** A code longer than LOOKUP_BITS: its skip entry, or -1 when it is in no table. */
function longCode(table: SkipTable, acc: number, bits: number): number {
  let length = LOOKUP_BITS + 1;
  let code = (acc >>> (bits - length)) & ((1 << length) - 1);
  while (code > (table.maxCode[length] as number)) {
    if (++length > 16) return -1;
    code = (acc >>> (bits - length)) & ((1 << length) - 1);
  }
  return skipEntry(table.symbols[code + (table.valueOffset[length] as number)] as number, length, table.ac);
}

interface Component {
  readonly id: number;
  readonly h: number;
  readonly v: number;
}

interface Frame {
  readonly width: number;
  readonly height: number;
  readonly components: readonly Component[];
  readonly hMax: number;
  readonly vMax: number;
}

/** One scan's components, each with its tables, in scan order. */
type ScanComponents = { readonly component: Component; readonly dc: SkipTable; readonly ac: SkipTable }[];

/**
 * Bytes kept ahead of a block: one block takes at most 64 codes of up to 16
 * bits, each with up to 15 more, so a block begun this far from the end of
 * what is unstuffed never reads past it. After the data ends, as many zero
 * bytes, as libjpeg feeds a decode that runs out: the all-zero code is in
 * every table, so they only ever decode.
 */
const AHEAD = 320;

/**
 * Entropy-coded data is read with its 0xFF00 stuffing taken out, a chunk at
 * a time into memory this module keeps, whatever the image's size: a
 * buffer per image would be garbage in every validation worker's isolate.
 */
const CHUNK = 64 * 1024;
const chunk = new Uint8Array(CHUNK + AHEAD);

/**
 * Unstuffs data from `from` into `chunk` after its first `count` bytes,
 * until the chunk is full or the next marker: where it stopped in `data`,
 * the bytes now in `chunk`, and the marker's offset (data.length: the data
 * ends without one), or -1 when the chunk filled first.
 */
function unstuff(data: Uint8Array, from: number, count: number): { next: number; count: number; marker: number } {
  const end = data.length;
  let p = from;
  while (count < CHUNK) {
    let ff = data.indexOf(0xff, p);
    if (ff < 0) ff = end;
    const take = Math.min(ff - p, CHUNK - count);
    chunk.set(data.subarray(p, p + take), count);
    count += take;
    p += take;
    if (p < ff) break;
    if (ff >= end) return { next: end, count, marker: end };
    let q = ff + 1;
    while (q < end && data[q] === 0xff) q++;
    if (q >= end) return { next: end, count, marker: end };
    if (data[q] !== 0) return { next: q - 1, count, marker: q - 1 };
    chunk[count++] = 0xff;
    p = q + 1;
  }
  return { next: p, count, marker: -1 };
}

/**
 * Walks one scan's entropy-coded data from `start`: the offset of the marker
 * after it, or what is wrong. `scan` counts scans from 1, for messages.
 */
function decodeScan(data: Uint8Array, start: number, frame: Frame, components: ScanComponents, restartInterval: number, scan: number): number | JpegScan {
  // The blocks of one MCU, each with its tables: a lone component is not interleaved (one block per MCU, its own size).
  const dc: SkipTable[] = [];
  const ac: SkipTable[] = [];
  let mcus: number;
  if (components.length === 1) {
    const only = components[0] as ScanComponents[number];
    mcus = Math.ceil(Math.ceil((frame.width * only.component.h) / frame.hMax) / 8) * Math.ceil(Math.ceil((frame.height * only.component.v) / frame.vMax) / 8);
    dc.push(only.dc);
    ac.push(only.ac);
  } else {
    mcus = Math.ceil(frame.width / (8 * frame.hMax)) * Math.ceil(frame.height / (8 * frame.vMax));
    for (const c of components) for (let b = 0; b < c.component.h * c.component.v; b++) dc.push(c.dc), ac.push(c.ac);
  }
  const blocks = dc.length;
  const bytes = chunk;
  let mcu = 0;
  let restarts = 0;
  let next = start;
  for (;;) {
    // One restart interval (or the whole scan): its data up to the next marker.
    let { count, marker, next: after } = unstuff(data, next, 0);
    if (marker >= 0) bytes.fill(0, count, count + AHEAD);
    // Blocks begin below this; past it, more data is unstuffed, or (at the marker) the data has ended.
    let refillAt = marker >= 0 ? count + 8 : count - AHEAD;
    const until = restartInterval > 0 ? Math.min(mcus, mcu + restartInterval) : mcus;
    // acc holds the next `bits` bits of the data in its low bits; bits < 0 means as many are still to skip.
    let pos = 0;
    let acc = 0;
    let bits = 0;
    for (; mcu < until; mcu++) {
      for (let b = 0; b < blocks; b++) {
        if (pos > refillAt) {
          // Past the data by more than acc holds: it ended early.
          if (marker >= 0) return damaged(`its data ends at MCU ${mcu + 1} of ${mcus} in scan ${scan}`);
          bytes.copyWithin(0, pos, count);
          ({ count, marker, next: after } = unstuff(data, after, count - pos));
          pos = 0;
          if (marker >= 0) bytes.fill(0, count, count + AHEAD);
          refillAt = marker >= 0 ? count + 8 : count - AHEAD;
        }
        let table = dc[b] as SkipTable;
        if (bits < 25) while (bits < 25) (acc = (acc << 8) | (bytes[pos++] as number)), (bits += 8);
        let entry = table.lookup[(acc >>> (bits - LOOKUP_BITS)) & 511] as number;
        if (entry === 0 && (entry = longCode(table, acc, bits)) < 0) return damaged(`a Huffman code in no table at MCU ${mcu + 1} of ${mcus} in scan ${scan}`);
        bits -= entry & 31;
        table = ac[b] as SkipTable;
        const lookup = table.lookup;
        for (let k = 1; k < 64; ) {
          if (bits < 19) while (bits < 25) (acc = (acc << 8) | (bytes[pos++] as number)), (bits += 8);
          entry = lookup[(acc >>> (bits - LOOKUP_BITS)) & 511] as number;
          if (entry === 0 && (entry = longCode(table, acc, bits)) < 0) return damaged(`a Huffman code in no table at MCU ${mcu + 1} of ${mcus} in scan ${scan}`);
          bits -= entry & 31;
          k += entry >> 5;
        }
      }
    }
    // Bits taken beyond the data: libjpeg's "premature end of data segment".
    const unused = count * 8 - (pos * 8 - bits);
    if (unused < 0) return damaged(`its data ends before MCU ${until} of ${mcus} in scan ${scan}`);
    // Whole bytes the blocks did not take: the data decoded differently from how it was written.
    if (marker < 0) return damaged(`more than ${unused >> 3} bytes of data after MCU ${until} of ${mcus} in scan ${scan}`);
    if (unused >= 8) return damaged(`${unused >> 3} bytes of data after MCU ${until} of ${mcus} in scan ${scan}`);
    if (marker >= data.length) return damaged(`it ends inside scan ${scan}`);
    if (mcu >= mcus) return marker;
    const due = 0xd0 + (restarts & 7);
    if (data[marker + 1] !== due) return damaged(`marker 0x${(data[marker + 1] as number).toString(16)} where RST${restarts & 7} was due, after MCU ${mcu} of ${mcus} in scan ${scan}`);
    restarts++;
    next = marker + 2;
  }
}

const START_OF_FRAME = new Set([0xc0, 0xc1, 0xc2, 0xc3, 0xc5, 0xc6, 0xc7, 0xc9, 0xca, 0xcb, 0xcd, 0xce, 0xcf]);

/** The frame of a baseline or extended-sequential, Huffman-coded, 8-bit SOF, or why it is not read. */
function readFrame(data: Uint8Array, at: number, marker: number): Frame | JpegScan {
  if (marker !== 0xc0 && marker !== 0xc1) return unread(`SOF 0x${marker.toString(16)} (progressive, lossless or arithmetic-coded)`);
  if (data[at] !== 8) return unread(`${data[at]}-bit samples`);
  const height = ((data[at + 1] as number) << 8) | (data[at + 2] as number);
  const width = ((data[at + 3] as number) << 8) | (data[at + 4] as number);
  const count = data[at + 5] as number;
  if (width === 0 || height === 0 || count === 0 || count > 4) return unread(`a frame of ${width} x ${height} with ${count} components`);
  const components: Component[] = [];
  for (let c = 0; c < count; c++) {
    const o = at + 6 + c * 3;
    const h = (data[o + 1] as number) >> 4;
    const v = (data[o + 1] as number) & 15;
    if (h < 1 || h > 4 || v < 1 || v > 4) return unread(`sampling ${h} x ${v}`);
    components.push({ id: data[o] as number, h, v });
  }
  return { width, height, components, hMax: Math.max(...components.map((c) => c.h)), vMax: Math.max(...components.map((c) => c.v)) };
}

/** Walks a JPEG from SOI through every scan to EOI. */
export function scanJpeg(data: Uint8Array): JpegScan {
  const end = data.length;
  if (end < 4 || data[0] !== 0xff || data[1] !== 0xd8) return unread('no start-of-image marker');
  const dcTables: (SkipTable | undefined)[] = [];
  const acTables: (SkipTable | undefined)[] = [];
  const scanned = new Set<number>();
  let frame: Frame | undefined;
  let restartInterval = 0;
  let scans = 0;
  let i = 2;
  for (;;) {
    if (i + 2 > end) return damaged(scans > 0 ? 'no end-of-image marker after its last scan' : 'it ends before its first scan');
    if (data[i] !== 0xff) return damaged(`byte 0x${(data[i] as number).toString(16)} where a marker was due, at offset ${i}`);
    const marker = data[i + 1] as number;
    if (marker === 0xff) {
      i++; // fill
      continue;
    }
    if (marker === 0xd9) {
      if (!frame || scans === 0) return unread('end of image before any scan');
      if (frame.components.some((c) => !scanned.has(c.id))) return damaged('end of image before every component was scanned');
      return WHOLE;
    }
    // Restart markers and TEM outside a scan carry no length: libjpeg passes over them.
    if ((marker >= 0xd0 && marker <= 0xd7) || marker === 0x01) {
      i += 2;
      continue;
    }
    if (marker === 0xd8 || marker === 0x00) return unread(`marker 0x${marker.toString(16)} at offset ${i}`);
    if (i + 4 > end) return damaged('it ends inside a marker');
    const length = ((data[i + 2] as number) << 8) | (data[i + 3] as number);
    if (length < 2) return damaged(`a marker segment of length ${length} at offset ${i}`);
    const at = i + 4;
    const next = i + 2 + length;
    if (next > end) return damaged(`it ends inside a marker segment (0x${marker.toString(16)})`);
    if (START_OF_FRAME.has(marker)) {
      if (frame) return unread('a second frame');
      const read = readFrame(data, at, marker);
      if ('verdict' in read) return read;
      frame = read;
    } else if (marker === 0xc4) {
      for (let o = at; o < next; ) {
        const tableClass = (data[o] as number) >> 4;
        const id = (data[o] as number) & 15;
        if (tableClass > 1 || id > 3) return unread(`Huffman table ${tableClass}/${id}`);
        const counts = data.subarray(o + 1, o + 17);
        const total = counts.reduce((sum, n) => sum + n, 0);
        if (o + 17 + total > next) return damaged('a Huffman table longer than its segment');
        const table = skipTable(counts, data.subarray(o + 17, o + 17 + total), tableClass === 1);
        if (typeof table === 'string') return damaged(table);
        (tableClass === 0 ? dcTables : acTables)[id] = table;
        o += 17 + total;
      }
    } else if (marker === 0xdd) {
      restartInterval = ((data[at] as number) << 8) | (data[at + 1] as number);
    } else if (marker === 0xda) {
      if (!frame) return unread('a scan before the frame header');
      const count = data[at] as number;
      const components: ScanComponents = [];
      for (let c = 0; c < count; c++) {
        const id = data[at + 1 + c * 2] as number;
        const tables = data[at + 2 + c * 2] as number;
        const component = frame.components.find((f) => f.id === id);
        const dc = dcTables[tables >> 4];
        const ac = acTables[tables & 15];
        if (!component || !dc || !ac || scanned.has(id)) return unread(`scan ${scans + 1}: component ${id} or its tables not as expected`);
        components.push({ component, dc, ac });
        scanned.add(id);
      }
      const o = at + 1 + count * 2;
      if (count === 0 || data[o] !== 0 || data[o + 1] !== 63 || data[o + 2] !== 0) return unread(`scan ${scans + 1} is not sequential`);
      // libjpeg's limit on blocks in an interleaved MCU.
      if (count > 1 && components.reduce((sum, c) => sum + c.component.h * c.component.v, 0) > 10) return unread('more than 10 blocks in an MCU');
      scans++;
      const after = decodeScan(data, next, frame, components, restartInterval, scans);
      if (typeof after !== 'number') return after;
      i = after;
      continue;
    }
    i = next;
  }
}
