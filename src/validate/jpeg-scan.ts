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
import { dcImage, type DcPixels } from './jpeg-dc.js';
import { isFrameMarker } from './jpeg-header.js';
import { dcPlanes, decodeScan, skipTable, type Component, type DcPlanes, type Frame, type ScanComponents, type SkipTable } from './jpeg-entropy.js';

export type JpegScan =
  /** With `dc` asked, the image at 1/8 scale where the JPEG is a plain case for it (jpeg-dc.ts). */
  | { readonly verdict: 'whole'; readonly dc?: DcPixels }
  | { readonly verdict: 'damaged'; readonly why: string }
  | { readonly verdict: 'unread'; readonly why: string };

const WHOLE: JpegScan = { verdict: 'whole' };
const damaged = (why: string): JpegScan => ({ verdict: 'damaged', why });
const unread = (why: string): JpegScan => ({ verdict: 'unread', why });

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
    // Two components with one ID are left to libvips: a scan naming that ID twice, or in two scans, is not read (below).
    components.push({ id: data[o] as number, h, v, table: data[o + 2] as number });
  }
  return { width, height, components, hMax: Math.max(...components.map((c) => c.h)), vMax: Math.max(...components.map((c) => c.v)) };
}

/** APP segments that change how a decode's pixels look: EXIF (orientation), an ICC profile, Adobe's colour transform. */
function colourOrOrientation(data: Uint8Array, marker: number, at: number): boolean {
  const starts = (text: string) => Buffer.from(data.buffer, data.byteOffset + at, Math.min(text.length, data.length - at)).toString('latin1') === text;
  return (marker === 0xe1 && starts('Exif')) || (marker === 0xe2 && starts('ICC_PROFILE')) || (marker === 0xee && starts('Adobe'));
}

/**
 * Walks a JPEG from SOI through every scan to EOI. With `dc`, also keeps
 * every block's DC coefficient, for the image at 1/8 scale.
 */
export function scanJpeg(data: Uint8Array, options: { readonly dc?: boolean } = {}): JpegScan {
  const end = data.length;
  if (end < 4 || data[0] !== 0xff || data[1] !== 0xd8) return unread('no start-of-image marker');
  const dcTables: (SkipTable | undefined)[] = [];
  const acTables: (SkipTable | undefined)[] = [];
  const scanned = new Set<number>();
  const quantTables = new Set<number>();
  /** Each quantisation table's DC step, and what each component's scan began with (for `dc`). */
  const quantDc: number[] = [];
  const componentDc: number[] = [];
  let values: DcPlanes | undefined;
  let metadata = false;
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
      if (!values) return WHOLE;
      const dc = dcImage(frame, values, { quantDc: componentDc, metadata });
      return dc ? { verdict: 'whole', dc } : WHOLE;
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
    if (isFrameMarker(marker)) {
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
    } else if (marker === 0xdb) {
      for (let o = at; o < next; o += 1 + 64 * (((data[o] as number) >> 4) + 1)) {
        quantTables.add((data[o] as number) & 15);
        // Its first value (zigzag order) is the DC step: 8 or 16 bits.
        quantDc[(data[o] as number) & 15] = (data[o] as number) >> 4 === 0 ? (data[o + 1] as number) : ((data[o + 1] as number) << 8) | (data[o + 2] as number);
      }
    } else if (marker >= 0xe1 && marker <= 0xef) {
      if (colourOrOrientation(data, marker, at)) metadata = true;
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
        if (!component || !dc || !ac || scanned.has(id) || !quantTables.has(component.table)) return unread(`scan ${scans + 1}: component ${id} or its tables not as expected`);
        components.push({ component, dc, ac });
        scanned.add(id);
        // libjpeg takes a component's quantisation table as it stands when the component's first scan begins.
        componentDc[frame.components.indexOf(component)] = quantDc[component.table] as number;
      }
      const o = at + 1 + count * 2;
      if (count === 0 || data[o] !== 0 || data[o + 1] !== 63 || data[o + 2] !== 0) return unread(`scan ${scans + 1} is not sequential`);
      // libjpeg's limit on blocks in an interleaved MCU.
      if (count > 1 && components.reduce((sum, c) => sum + c.component.h * c.component.v, 0) > 10) return unread('more than 10 blocks in an MCU');
      scans++;
      if (options.dc && !values) values = dcPlanes(frame);
      const after = decodeScan(data, next, frame, components, restartInterval, scans, values);
      if (typeof after !== 'number') return damaged(after);
      i = after;
      continue;
    }
    i = next;
  }
}
