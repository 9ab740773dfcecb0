/**
 * A baseline JPEG at 1/8 scale from its DC coefficients, which the scan
 * reads anyway (jpeg-entropy.ts): the pixels a derivative is resized from
 * when it is no larger than that, with no decode.
 *
 * This is what libjpeg computes when libvips shrinks a JPEG on load by 8
 * (its 1x1 inverse DCT is each block's dequantised DC, scaled and centred),
 * what sharp does for a 256 px derivative of a 1600 x 2400 sheet. With
 * `--derive 256` every such sheet had been scanned for its check and then
 * decoded by libvips for its pixels, two passes over its Huffman codes: the
 * decode cost a run on two cores as much as the rest of its work.
 *
 * Only the plain cases: grey, or YCbCr with whole-number sampling ratios,
 * no EXIF (orientation), no ICC profile, no Adobe marker (whose colour
 * transform may say RGB or YCCK). Anything else is decoded by libvips as
 * before.
 */
import type { DcPlanes, Frame } from './jpeg-entropy.js';

/** Raw pixels, as derive.ts resizes them (DecodedPixels). */
export interface DcPixels {
  readonly data: Buffer;
  readonly info: { readonly width: number; readonly height: number; readonly channels: 1 | 3 };
}

/** What the markers before and between the scans said that matters for colour and orientation. */
export interface DcContext {
  /** Each component's DC quantisation step (frame order), as it stood when its scan began. */
  readonly quantDc: readonly number[];
  /** An APP1 Exif, APP2 ICC profile or APP14 Adobe segment was seen. */
  readonly metadata: boolean;
}

const clamp = (v: number): number => (v < 0 ? 0 : v > 255 ? 255 : v);

/** libjpeg's 1x1 inverse DCT: the dequantised DC, descaled by 8 with rounding, centred on 128. */
function sample(quantised: number, step: number): number {
  return clamp(((quantised * step + 4) >> 3) + 128);
}

// libjpeg's YCbCr -> RGB in 16-bit fixed point (jdcolor.c), so the pixels are the ones its decode gives.
const FIX = (x: number): number => Math.floor(x * 65536 + 0.5);
const HALF = 1 << 15;
const CR_R = FIX(1.402);
const CB_G = FIX(0.34414);
const CR_G = FIX(0.71414);
const CB_B = FIX(1.772);

/** The image at 1/8 scale, or undefined when it is not a plain case (see above). */
export function dcImage(frame: Frame, values: DcPlanes, context: DcContext): DcPixels | undefined {
  const count = frame.components.length;
  if (values.unread || context.metadata || (count !== 1 && count !== 3)) return undefined;
  // libjpeg takes three components with IDs R, G, B for RGB; any other three are YCbCr.
  if (count === 3 && frame.components.map((c) => c.id).join() === '82,71,66') return undefined;
  if (frame.components.some((c) => frame.hMax % c.h !== 0 || frame.vMax % c.v !== 0)) return undefined;
  const width = Math.ceil(frame.width / 8);
  const height = Math.ceil(frame.height / 8);
  // Chroma is repeated over its blocks' share of the image (libjpeg does not smooth it at this scale):
  // for each component, the plane column of each output column, and the plane row's offset of each output row.
  const columns = frame.components.map((c) => Int32Array.from({ length: width }, (_, x) => Math.floor((x * c.h) / frame.hMax)));
  const rows = frame.components.map((c, i) => Int32Array.from({ length: height }, (_, y) => Math.floor((y * c.v) / frame.vMax) * (values.strides[i] as number)));
  const planes = values.planes;
  const steps = context.quantDc;
  const data = Buffer.from(new ArrayBuffer(width * height * count));
  if (count === 1) {
    const [plane, step, column, row] = [planes[0] as Int32Array, steps[0] as number, columns[0] as Int32Array, rows[0] as Int32Array];
    for (let y = 0, o = 0; y < height; y++) for (let x = 0; x < width; x++) data[o++] = sample(plane[(row[y] as number) + (column[x] as number)] as number, step);
    return { data, info: { width, height, channels: 1 } };
  }
  const [luma, blue, red] = planes as [Int32Array, Int32Array, Int32Array];
  const [lumaColumn, blueColumn, redColumn] = columns as [Int32Array, Int32Array, Int32Array];
  const [lumaStep, blueStep, redStep] = steps as [number, number, number];
  for (let y = 0, o = 0; y < height; y++) {
    const lumaRow = rows[0]![y] as number;
    const blueRow = rows[1]![y] as number;
    const redRow = rows[2]![y] as number;
    for (let x = 0; x < width; x++, o += 3) {
      const l = sample(luma[lumaRow + (lumaColumn[x] as number)] as number, lumaStep);
      const b = sample(blue[blueRow + (blueColumn[x] as number)] as number, blueStep) - 128;
      const r = sample(red[redRow + (redColumn[x] as number)] as number, redStep) - 128;
      data[o] = clamp(l + ((CR_R * r + HALF) >> 16));
      data[o + 1] = clamp(l + ((-CB_G * b - CR_G * r + HALF) >> 16));
      data[o + 2] = clamp(l + ((CB_B * b + HALF) >> 16));
    }
  }
  return { data, info: { width, height, channels: 3 } };
}
