/**
 * The entropy-coded data of a baseline JPEG's scan, walked block by block
 * without decoding a coefficient: the inner loop of jpeg-scan.ts, which
 * reads the markers around it and says what the walk found.
 */

/** Bits a code is looked up by at once; longer codes (rare) are walked bit by bit. */
const LOOKUP_BITS = 9;
/** Where a DC entry keeps its coefficient's size (above its step). */
const DC_SIZE_SHIFT = 12;

/**
 * A Huffman table made for skipping, not decoding: for each 9-bit prefix,
 * the bits a symbol takes with the coefficient bits that follow it, and how
 * far it moves through the block's 64 coefficients (an AC run, 16 for ZRL,
 * 64 for end-of-block; 1 for a DC symbol); a DC symbol also keeps its
 * coefficient's size, for a scan that reads DC values (DcPlanes). 0: a code
 * longer than 9 bits.
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
  if (!ac) return (size << DC_SIZE_SHIFT) | (1 << 5) | (codeLength + size);
  const step = size !== 0 ? run + 1 : run === 15 ? 16 : 64;
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

/**
 * The DC coefficient of every block, by component (in frame order), as a
 * scan reads them: each block's average, the image at 1/8 scale
 * (jpeg-dc.ts). A component's blocks are laid out as its MCUs cover it,
 * `strides[c]` to a row. `unread` is set when a value could not be read
 * where the walk could (a DC code and its bits longer than what the walk
 * holds at once: only tables no encoder writes); the planes are then not
 * to be used.
 */
export interface DcPlanes {
  readonly planes: Int32Array[];
  readonly strides: number[];
  unread: boolean;
}

/** Memory the planes are laid in, kept from image to image (as `chunk` is): grown, never given back. */
let planeMemory = new Int32Array(0);

/**
 * Planes for every DC coefficient of `frame`, to be filled by decodeScan:
 * in memory this module keeps, so they are good until the next call.
 */
export function dcPlanes(frame: Frame): DcPlanes {
  const mcusPerLine = Math.ceil(frame.width / (8 * frame.hMax));
  const mcusPerColumn = Math.ceil(frame.height / (8 * frame.vMax));
  const strides = frame.components.map((c) => mcusPerLine * c.h);
  const sizes = frame.components.map((c, i) => (strides[i] as number) * mcusPerColumn * c.v);
  const total = sizes.reduce((sum, n) => sum + n, 0);
  if (planeMemory.length < total) planeMemory = new Int32Array(total);
  let at = 0;
  const planes = sizes.map((size) => planeMemory.subarray(at, (at += size)));
  return { planes, strides, unread: false };
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
export function decodeScan(data: Uint8Array, start: number, frame: Frame, components: ScanComponents, restartInterval: number, scan: number, values?: DcPlanes): number | string {
  // The blocks of one MCU, each with its tables: a lone component is not interleaved (one block per MCU, its own size).
  const dc: SkipTable[] = [];
  const ac: SkipTable[] = [];
  // For `values`: each block's component (frame order), its place in its MCU, and the MCU's size in that component's blocks
  // (1 x 1 for a lone component: its blocks come in raster order, each an MCU).
  const blockComponent: number[] = [];
  const blockX: number[] = [];
  const blockY: number[] = [];
  const mcuWidth: number[] = [];
  const mcuHeight: number[] = [];
  let mcus: number;
  let mcusPerLine: number;
  if (components.length === 1) {
    const only = components[0] as ScanComponents[number];
    mcusPerLine = Math.ceil(Math.ceil((frame.width * only.component.h) / frame.hMax) / 8);
    mcus = mcusPerLine * Math.ceil(Math.ceil((frame.height * only.component.v) / frame.vMax) / 8);
    dc.push(only.dc);
    ac.push(only.ac);
    blockComponent.push(frame.components.indexOf(only.component));
    blockX.push(0);
    blockY.push(0);
    mcuWidth.push(1);
    mcuHeight.push(1);
  } else {
    mcusPerLine = Math.ceil(frame.width / (8 * frame.hMax));
    mcus = mcusPerLine * Math.ceil(frame.height / (8 * frame.vMax));
    for (const c of components) {
      for (let b = 0; b < c.component.h * c.component.v; b++) {
        dc.push(c.dc), ac.push(c.ac);
        blockComponent.push(frame.components.indexOf(c.component));
        blockX.push(b % c.component.h);
        blockY.push(Math.floor(b / c.component.h));
        mcuWidth.push(c.component.h);
        mcuHeight.push(c.component.v);
      }
    }
  }
  const blocks = dc.length;
  const predictions = new Int32Array(frame.components.length);
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
    // DC values are coded as differences, from 0 again after each restart marker.
    predictions.fill(0);
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
        if (values) {
          const c = blockComponent[b] as number;
          const row = Math.floor(mcu / mcusPerLine) * (mcuHeight[b] as number) + (blockY[b] as number);
          const column = (mcu % mcusPerLine) * (mcuWidth[b] as number) + (blockX[b] as number);
          readDc(values, entry, acc, bits, predictions, c, row * (values.strides[c] as number) + column);
        }
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

/** Reads one block's DC difference (its code is the next `entry & 31` of the `bits` in `acc`) into component `c`'s plane at `at`. */
function readDc(values: DcPlanes, entry: number, acc: number, bits: number, predictions: Int32Array, c: number, at: number): void {
  const taken = entry & 31;
  const size = entry >>> DC_SIZE_SHIFT;
  if (taken > bits) {
    values.unread = true;
    return;
  }
  let diff = 0;
  if (size > 0) {
    const v = (acc >>> (bits - taken)) & ((1 << size) - 1);
    diff = v < 1 << (size - 1) ? v - (1 << size) + 1 : v;
  }
  const value = ((predictions[c] as number) + diff) | 0;
  predictions[c] = value;
  (values.planes[c] as Int32Array)[at] = value;
}
