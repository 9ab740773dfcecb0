/**
 * Per-width derivatives (`run --derive`, `herbdl derive`): for each width, a
 * JPEG whose longer edge is at most that width, written beside the image as
 * `<into>.w<width>`. One decode serves every width: the image is decoded
 * once at the largest width asked for (JPEG shrink-on-load makes that a
 * fraction of a full decode) and each width is resized from those pixels;
 * a baseline JPEG at least 8 times the largest width gets its pixels from
 * the scan that checks it (jpeg-dc.ts), with no decode at all.
 * A width the image already fits is never upscaled: the stored file itself
 * is that derivative, hard-linked (no second copy, no second encode).
 * Derivatives are oriented (EXIF orientation applied) and carry no metadata.
 */
import { link, rm } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { PermanentError, vipsSystemError } from '../errors.js';
import { image, strictDecode, vips } from './decode-warnings.js';
import { decodeFailure } from './decode-failure.js';
import { readJpegFrame } from './jpeg-header.js';
import { derivativeTemp } from '../store/layout.js';

/** Raw pixels of one decode, at the largest width any derivative needs. */
export interface DecodedPixels {
  /** A Uint8Array, as pixels moved from another thread arrive (sharp takes either). */
  readonly data: Uint8Array;
  readonly info: { readonly width: number; readonly height: number; readonly channels: 1 | 2 | 3 | 4 };
}

/** The widths an image of this longer edge must be resized for (the others are the image itself). */
export function widthsBelow(widths: readonly number[], longerEdge: number): number[] {
  return widths.filter((w) => w < longerEdge);
}

/**
 * Decodes every scan of `input` once, for the check and the derivatives
 * together, shrunk on load to the largest of `widths` (all below its longer
 * edge) and with libjpeg's warnings read (decode-warnings.ts). A damaged
 * image throws, as a check's decode does.
 */
export async function decodeForWidths(input: string | Buffer, widths: readonly number[]): Promise<DecodedPixels> {
  const largest = Math.max(...widths);
  const { data, info } = await strictDecode(() =>
    image(input).autoOrient().resize(largest, largest, { fit: 'inside', withoutEnlargement: true }).raw().toBuffer({ resolveWithObject: true }),
  );
  return { data, info: { width: info.width, height: info.height, channels: info.channels } };
}

/**
 * Writes `<into>.w<width>` for every width: resized from `pixels` where the
 * image is larger (`pixels` must then be given), else a link to `source`.
 */
export async function writeDerivatives(source: string, into: string, widths: readonly number[], longerEdge: number, quality: number, pixels?: DecodedPixels): Promise<void> {
  for (const width of widths) {
    const target = derivativeTemp(into, width);
    await rm(target, { force: true });
    if (width >= longerEdge) {
      await link(source, target);
      continue;
    }
    if (!pixels) throw new Error(`${source}: no pixels to resize to ${width}`);
    await vips(() => image(pixels.data, { raw: pixels.info }).resize(width, width, { fit: 'inside', withoutEnlargement: true }).jpeg({ quality }).toFile(target)).catch((err: unknown) =>
      // A full disk is this machine's problem, never the image's.
      Promise.reject(vipsSystemError(err, target) ?? err),
    );
  }
}

/** From the frame header, or from libvips where the header is one this reader does not know. */
async function longerEdgeOf(bytes: Buffer, source: string): Promise<number> {
  const frame = readJpegFrame(bytes);
  if (frame && frame.width > 0 && frame.height > 0) return Math.max(frame.width, frame.height);
  try {
    const meta = await vips(() => image(bytes).metadata());
    if (meta.width && meta.height) return Math.max(meta.width, meta.height);
  } catch (err) {
    throw decodeFailure(err, bytes, source);
  }
  throw new PermanentError(`${source}: no image size in its header`, 'corrupt');
}

/**
 * The derivatives of a stored JPEG (one `run` converted, or one `herbdl
 * derive` finds in the tree): its frame header gives its size, one decode
 * gives every width below it.
 */
export async function deriveFromFile(source: string, into: string, widths: readonly number[], quality: number): Promise<void> {
  if (widths.length === 0) return;
  const bytes = readFileSync(source);
  const longerEdge = await longerEdgeOf(bytes, source);
  const below = widthsBelow(widths, longerEdge);
  let pixels: DecodedPixels | undefined;
  if (below.length > 0) {
    try {
      pixels = await decodeForWidths(bytes, below);
    } catch (err) {
      throw decodeFailure(err, bytes, source);
    }
  }
  await writeDerivatives(source, into, widths, longerEdge, quality, pixels);
}
