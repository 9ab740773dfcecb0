/**
 * The entropy-coded data of a baseline JPEG's scan, walked block by block
 * without decoding a coefficient: the inner loop of jpeg-scan.ts, which
 * reads the markers around it and says what the walk found.
 */

/** Bits a code is looked up by at once; longer codes (rare) are walked bit by bit. */
const LOOKUP_BITS = 9;

/**
 * A Huffman table made for skipping, not decoding: for each 9-bit prefix,
 * the bits a symbol takes with the coefficient bits that follow it, and how
 * far it moves through the block's 64 coefficients (an AC run, 16 for ZRL,
 * 64 for end-of-block; 1 for a DC symbol). 0: a code longer than 9 bits.
 */
export interface SkipTable {
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
export function skipTable(counts: Uint8Array, symbols: Uint8Array, ac: boolean): SkipTable | string {
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
export function longCode(table: SkipTable, acc: number, bits: number): number {
  let length = LOOKUP_BITS + 1;
  let code = (acc >>> (bits - length)) & ((1 << length) - 1);
  while (code > (table.maxCode[length] as number)) {
    if (++length > 16) return -1;
    code = (acc >>> (bits - length)) & ((1 << length) - 1);
  }
  return skipEntry(table.symbols[code + (table.valueOffset[length] as number)] as number, length, table.ac);
}

export interface Component {
  readonly id: number;
  readonly h: number;
  readonly v: number;
  /** Its quantisation table: libjpeg refuses a scan of a component whose table was never defined. */
  readonly table: number;
}

export interface Frame {
  readonly width: number;
  readonly height: number;
  readonly components: readonly Component[];
  readonly hMax: number;
  readonly vMax: number;
}

/** One scan's components, each with its tables, in scan order. */
export type ScanComponents = { readonly component: Component; readonly dc: SkipTable; readonly ac: SkipTable }[];

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
 * after it, or what is wrong with it. `scan` counts scans from 1, for messages.
 */
export function decodeScan(data: Uint8Array, start: number, frame: Frame, components: ScanComponents, restartInterval: number, scan: number): number | string {
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
          if (marker >= 0) return `its data ends at MCU ${mcu + 1} of ${mcus} in scan ${scan}`;
          bytes.copyWithin(0, pos, count);
          ({ count, marker, next: after } = unstuff(data, after, count - pos));
          pos = 0;
          if (marker >= 0) bytes.fill(0, count, count + AHEAD);
          refillAt = marker >= 0 ? count + 8 : count - AHEAD;
        }
        let table = dc[b] as SkipTable;
        if (bits < 25) while (bits < 25) (acc = (acc << 8) | (bytes[pos++] as number)), (bits += 8);
        let entry = table.lookup[(acc >>> (bits - LOOKUP_BITS)) & 511] as number;
        if (entry === 0 && (entry = longCode(table, acc, bits)) < 0) return `a Huffman code in no table at MCU ${mcu + 1} of ${mcus} in scan ${scan}`;
        bits -= entry & 31;
        table = ac[b] as SkipTable;
        const lookup = table.lookup;
        for (let k = 1; k < 64; ) {
          if (bits < 19) while (bits < 25) (acc = (acc << 8) | (bytes[pos++] as number)), (bits += 8);
          entry = lookup[(acc >>> (bits - LOOKUP_BITS)) & 511] as number;
          if (entry === 0 && (entry = longCode(table, acc, bits)) < 0) return `a Huffman code in no table at MCU ${mcu + 1} of ${mcus} in scan ${scan}`;
          bits -= entry & 31;
          k += entry >> 5;
        }
      }
    }
    // Bits taken beyond the data: libjpeg's "premature end of data segment".
    const unused = count * 8 - (pos * 8 - bits);
    if (unused < 0) return `its data ends before MCU ${until} of ${mcus} in scan ${scan}`;
    // Whole bytes the blocks did not take: the data decoded differently from how it was written.
    if (marker < 0) return `more than ${unused >> 3} bytes of data after MCU ${until} of ${mcus} in scan ${scan}`;
    if (unused >= 8) return `${unused >> 3} bytes of data after MCU ${until} of ${mcus} in scan ${scan}`;
    if (marker >= data.length) return `it ends inside scan ${scan}`;
    if (mcu >= mcus) return marker;
    const due = 0xd0 + (restarts & 7);
    if (data[marker + 1] !== due) return `marker 0x${(data[marker + 1] as number).toString(16)} where RST${restarts & 7} was due, after MCU ${mcu} of ${mcus} in scan ${scan}`;
    restarts++;
    next = marker + 2;
  }
}
