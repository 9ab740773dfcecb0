/**
 * A JPEG's size and component count from its frame header (SOFn), read in
 * JS: for the common case (a JPEG kept as it is) this saves a call into
 * libvips. Returns undefined when the header cannot be found; the caller
 * then asks sharp.
 */
export interface JpegFrame {
  readonly width: number;
  readonly height: number;
  /** 1 grey, 3 YCbCr/RGB, 4 CMYK/YCCK. */
  readonly components: number;
}

/** A start-of-frame marker (SOF0 to SOF15, but DHT, JPG and DAC, which share the range). */
export function isFrameMarker(marker: number): boolean {
  return marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc;
}

export function readJpegFrame(data: Buffer): JpegFrame | undefined {
  if (data.length < 4 || data[0] !== 0xff || data[1] !== 0xd8) return undefined;
  let i = 2;
  while (i + 4 <= data.length) {
    if (data[i] !== 0xff) return undefined;
    const marker = data[i + 1] as number;
    if (marker === 0xff) {
      i++; // fill byte
      continue;
    }
    if (marker === 0xd8 || (marker >= 0xd0 && marker <= 0xd7) || marker === 0x01) {
      i += 2;
      continue;
    }
    const length = data.readUInt16BE(i + 2);
    if (isFrameMarker(marker)) {
      if (i + 10 > data.length) return undefined;
      return { height: data.readUInt16BE(i + 5), width: data.readUInt16BE(i + 7), components: data[i + 9] as number };
    }
    if (marker === 0xda || length < 2) return undefined; // scan data before any frame header
    i += 2 + length;
  }
  return undefined;
}

/**
 * Walks a JPEG's markers from SOI to EOI, through every scan's entropy-coded
 * data (where 0xFF is always followed by 0x00 or a restart marker), without
 * decoding a pixel: 'whole' when the end-of-image marker is reached in
 * order, 'truncated' when the data stops before it, 'malformed' when a
 * segment is not where it should be. This is `--check structure`: it
 * catches a body cut short, whatever its Content-Length said, but not data
 * damaged in the middle of a scan, which only a decode finds.
 */
export function jpegStructure(data: Buffer): 'whole' | 'truncated' | 'malformed' {
  if (data.length < 4 || data[0] !== 0xff || data[1] !== 0xd8) return 'malformed';
  let i = 2;
  let frames = 0;
  for (;;) {
    if (i + 2 > data.length) return 'truncated';
    if (data[i] !== 0xff) return 'malformed';
    const marker = data[i + 1] as number;
    if (marker === 0xff) {
      i++;
      continue;
    }
    if (marker === 0xd9) return frames > 0 ? 'whole' : 'malformed';
    if ((marker >= 0xd0 && marker <= 0xd7) || marker === 0x01) {
      i += 2;
      continue;
    }
    if (i + 4 > data.length) return 'truncated';
    const length = data.readUInt16BE(i + 2);
    if (length < 2) return 'malformed';
    if (isFrameMarker(marker)) frames++;
    i += 2 + length;
    if (marker !== 0xda) continue;
    // Entropy-coded data: runs to the next marker that is not a stuffed 0xFF00 or a restart.
    for (;;) {
      const ff = data.indexOf(0xff, i);
      if (ff < 0 || ff + 1 >= data.length) return 'truncated';
      const next = data[ff + 1] as number;
      if (next === 0x00 || (next >= 0xd0 && next <= 0xd7) || next === 0xff) {
        i = ff + (next === 0xff ? 1 : 2);
        continue;
      }
      i = ff;
      break;
    }
  }
}
