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
    const isFrame = marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc;
    if (isFrame) {
      if (i + 10 > data.length) return undefined;
      return { height: data.readUInt16BE(i + 5), width: data.readUInt16BE(i + 7), components: data[i + 9] as number };
    }
    if (marker === 0xda || length < 2) return undefined; // scan data before any frame header
    i += 2 + length;
  }
  return undefined;
}
