/**
 * What herbdl keeps is a real image. A plain (RGB or greyscale) baseline
 * JPEG has every block of its scans read (jpeg-scan.ts), so a truncated or
 * damaged one fails even with a correct Content-Length; any other body is
 * decoded with sharp (its strict failOn default, and its pixel limit, so a
 * decompression bomb fails before it takes the memory). A plain JPEG that
 * passes is kept byte for byte; a CMYK JPEG, PNG, TIFF (first page), WebP,
 * GIF and AVIF become JPEG with EXIF orientation applied and CMYK or 16-bit
 * input brought to 8-bit sRGB. Image work runs on worker threads of its own
 * (validator-pool.ts), apart from the download concurrency.
 */
import { createHash } from 'node:crypto';
import { createReadStream, readFileSync } from 'node:fs';
import { rename, rm, writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import pLimit from 'p-limit';
import type { Metadata } from 'sharp';
import { fileSystemErrno, namingPath, PermanentError, vipsSystemError } from '../errors.js';
import { writeSynced } from '../store/durable.js';
import { decodeFailure } from './decode-failure.js';
import { jpegStructure, readJpegFrame, type JpegFrame } from './jpeg-header.js';
import { scanJpeg } from './jpeg-scan.js';
import { readBack, readBackKept } from './read-back.js';
import { decodeForWidths, deriveFromFile, widthsBelow, writeDerivatives, type DecodedPixels } from './derive.js';
import { image, strictDecode, vips } from './decode-warnings.js';

export interface ValidateSettings {
  readonly jpegQuality: number;
  /** Downscale anything larger than this many pixels on its longer edge (0: keep the size). */
  readonly maxEdge: number;
  /** How a JPEG kept as it is is checked: decoded, or its markers walked end to end (--check). */
  readonly check: 'decode' | 'structure';
  /** Widths to write derivatives at, beside the stored file (`<path>.w<width>`, see derive.ts); none by default. */
  readonly derive?: readonly number[];
}

export interface ValidatedImage {
  /** What the host sent: jpeg, png, tiff, webp, gif, heif. */
  readonly receivedFormat: string;
  readonly width: number;
  readonly height: number;
  /** Set when the stored file is not the received body (converted or downscaled). */
  readonly stored?: { readonly bytes: number; readonly sha256: string };
  /** The file at the path was written here from the body in memory and fsynced: publishing need not sync it again. */
  readonly synced?: true;
}

const DECODE_CHECK_EDGE = 64;
const CONVERTIBLE = new Set(['png', 'tiff', 'webp', 'gif', 'heif']);

/** sharp's own default limitInputPixels: larger images are refused before they are decoded. */
const PIXEL_LIMIT = 0x3fff * 0x3fff;

function checkPixels(width: number, height: number): void {
  if (width * height > PIXEL_LIMIT) throw new PermanentError(`image of ${width} x ${height} is over the pixel limit (${PIXEL_LIMIT})`, 'too_large');
}

async function sha256Of(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/**
 * Decodes every scan, to a thumbnail: JPEG shrink-on-load (1/8 for a sheet)
 * still reads all of the entropy-coded data, and with libjpeg's warnings
 * read (decode-warnings.ts) it fails all that a full decode fails and more,
 * at 0.55x of its CPU for a 1600 x 2400 sheet and about 0.9x for a 400 x 600 one.
 */
async function decodeCheck(input: string | Buffer): Promise<void> {
  await strictDecode(() => image(input).resize(DECODE_CHECK_EDGE, DECODE_CHECK_EDGE, { fit: 'inside', withoutEnlargement: true }).raw().toBuffer());
}

/** A JPEG that is kept byte for byte: RGB or grey, with a size, not to be downscaled. */
function keptAsIs(frame: JpegFrame | undefined, settings: ValidateSettings): frame is JpegFrame {
  return !!frame && frame.components !== 4 && frame.width > 0 && frame.height > 0 && !(settings.maxEdge > 0 && Math.max(frame.width, frame.height) > settings.maxEdge);
}

/** A check passed without libvips; `pixels` when derivatives were asked for and the scan made them (jpeg-dc.ts). */
interface Passed {
  readonly pixels?: DecodedPixels;
}

/**
 * The check of a plain JPEG kept as it is, as far as it goes without
 * libvips: its size within the pixel limit, then its markers walked to the
 * end (structure) or every block of its scans read (jpeg-scan.ts). Throws
 * what it finds wrong; false when only a decode can tell (a JPEG the scan
 * does not read: progressive, arithmetic-coded, ...). With `widths` (the
 * derivatives below its size), the scan also keeps the image at 1/8 scale,
 * given as `pixels` when it is no smaller than each: no decode then.
 */
export function checkWithoutLibvips(bytes: Buffer, frame: JpegFrame, check: ValidateSettings['check'], path: string, widths: readonly number[] = []): Passed | false {
  checkPixels(frame.width, frame.height);
  if (check === 'structure') {
    const structure = jpegStructure(bytes);
    if (structure === 'truncated') throw new PermanentError(`${path}: jpeg is truncated (its end is missing)`, 'truncated');
    if (structure === 'malformed') throw new PermanentError(`${path}: jpeg markers are not in order`, 'corrupt');
    return {};
  }
  const scan = scanJpeg(bytes, { dc: widths.length > 0 });
  // Truncated or corrupt is told by the bytes, as for a failed decode.
  if (scan.verdict === 'damaged') throw decodeFailure(new Error(scan.why), bytes, path);
  if (scan.verdict === 'unread') return false;
  const dc = scan.dc;
  return dc && Math.max(dc.info.width, dc.info.height) >= Math.max(...widths) ? { pixels: dc } : {};
}

/**
 * The check of a plain JPEG that is kept as it is: without libvips where
 * that decides it, else every scan decoded. `bytes` is the body in memory
 * (undefined for one too large to hold, which only a decode checks);
 * `input` what libvips decodes.
 */
export async function checkPlainJpeg(input: string | Buffer, bytes: Buffer | undefined, frame: JpegFrame, check: ValidateSettings['check'], path: string): Promise<void> {
  if (bytes && checkWithoutLibvips(bytes, frame, check, path)) return;
  checkPixels(frame.width, frame.height);
  try {
    await decodeCheck(input);
  } catch (err) {
    throw decodeFailure(err, input, path);
  }
}

/**
 * A plain JPEG with derivatives to make: the check's verdict first (so
 * --derive keeps exactly what the check alone keeps; `checked` when another
 * thread gave it), with the pixels if the scan made them, else one decode
 * for them, which is also the check of a JPEG the scan does not read.
 */
async function checkAndDecode(input: string | Buffer, bytes: Buffer | undefined, frame: JpegFrame, check: ValidateSettings['check'], path: string, widths: readonly number[], checked: boolean): Promise<DecodedPixels> {
  const passed = bytes && !checked ? checkWithoutLibvips(bytes, frame, check, path, widths) : false;
  if (passed && passed.pixels) return passed.pixels;
  checkPixels(frame.width, frame.height);
  try {
    return await decodeForWidths(input, widths);
  } catch (err) {
    throw decodeFailure(err, input, path);
  }
}

/**
 * What a thread without libvips leaves to the one with it: the check itself
 * (not a plain JPEG kept as it is, or one the scan does not read), or only
 * the derivatives' pixels, the check passed.
 */
export type LeftToLibvips = 'check' | 'pixels';

/** A plain JPEG that passed, its derivatives' pixels made by the scan: only their resizing is left to libvips. */
export interface PixelsMade {
  readonly pixels: DecodedPixels;
  /** The image's own size. */
  readonly width: number;
  readonly height: number;
}

/**
 * validateImage as far as it goes without libvips, which for the common
 * case (a plain JPEG kept as it is, no derivative to make below its size)
 * is all of it; with derivatives of a large sheet, all but resizing the
 * pixels its scan made (PixelsMade). `body` as for validateImage.
 */
export async function validateWithoutLibvips(path: string, settings: ValidateSettings, body?: Buffer): Promise<ValidatedImage | LeftToLibvips | PixelsMade> {
  // Read back into kept memory: only looked at before the first await below.
  const bytes = body ?? readBackKept(path);
  if (typeof bytes === 'string') return 'check';
  const frame = readJpegFrame(bytes);
  if (!keptAsIs(frame, settings)) return 'check';
  const below = widthsBelow(settings.derive ?? [], Math.max(frame.width, frame.height));
  const passed = checkWithoutLibvips(bytes, frame, settings.check, path, below);
  if (!passed) return 'check';
  if (passed.pixels) return { pixels: passed.pixels, width: frame.width, height: frame.height };
  if (below.length > 0) return 'pixels';
  return keep(path, settings, frame, body);
}

/**
 * A plain JPEG that passed, kept as it is: its body written (if it came in
 * memory) and fsynced here, on a validation thread (publishing then skips
 * the open, fsync and close it would make on the thread that drives
 * downloads), its derivatives beside it.
 */
async function keep(path: string, settings: ValidateSettings, frame: { readonly width: number; readonly height: number }, body: Buffer | undefined, pixels?: DecodedPixels): Promise<ValidatedImage> {
  if (body) await writeSynced(path, body);
  await writeDerivatives(path, path, settings.derive ?? [], Math.max(frame.width, frame.height), settings.jpegQuality, pixels);
  return { receivedFormat: 'jpeg', width: frame.width, height: frame.height, ...(body ? { synced: true as const } : {}) };
}

/**
 * Validates an image and leaves what is to be stored at `path` (converted
 * there where needed). `body`, when given, is the image, still only in
 * memory: it is decoded from there and written to `path` once it is known to
 * be kept as it is (a converted image is written as its conversion instead),
 * by a validation worker, never by the thread that drives downloads, and
 * on libuv's pool: creating the file took a third of a worker's own time
 * when it wrote synchronously. Without `body`, the image is the file at
 * `path`. `left` is what validateWithoutLibvips left: 'pixels' when the
 * check already passed on another thread.
 */
export async function validateImage(path: string, settings: ValidateSettings, body?: Buffer, left: LeftToLibvips = 'check', made?: PixelsMade): Promise<ValidatedImage> {
  // Checked, its derivatives' pixels made, on another thread: the body is only written, the pixels resized.
  if (made) return keep(path, settings, made, body, made.pixels);
  // A large body is in its file: read back (read-back.ts), it takes the same path as a small one.
  return body ? validateInput(path, settings, body, body, left) : readBack(path, (input) => validateInput(path, settings, input, undefined, left));
}

/** validateImage of `input`, the body in memory (or the path of a huge one); `body` when it is still to be written. */
async function validateInput(path: string, settings: ValidateSettings, input: Buffer | string, body: Buffer | undefined, left: LeftToLibvips): Promise<ValidatedImage> {
  const bytes = typeof input === 'string' ? (settings.check === 'structure' ? readFileSync(path) : undefined) : input;
  const frame = bytes ? readJpegFrame(bytes) : undefined;
  const widths = settings.derive ?? [];
  if (keptAsIs(frame, settings)) {
    // A plain JPEG kept as it is: the scan (or walk), else a decode; one decode for its derivatives; no metadata call.
    const below = widthsBelow(widths, Math.max(frame.width, frame.height));
    if (below.length === 0) await checkPlainJpeg(input, bytes, frame, settings.check, path);
    const pixels = below.length > 0 ? await checkAndDecode(input, bytes, frame, settings.check, path, below, left === 'pixels') : undefined;
    return keep(path, settings, frame, body, pixels);
  }
  let meta: Metadata;
  try {
    // The header alone, without sharp's pixel limit: the limit is checked here, by the dimensions, not by an error's text.
    meta = await vips(() => image(input, { limitInputPixels: false }).metadata());
  } catch (err) {
    throw decodeFailure(err, input, path);
  }
  const format = meta.format ?? 'unknown';
  if (format !== 'jpeg' && !CONVERTIBLE.has(format)) {
    throw new PermanentError(`${format} is not a format herbdl stores (jpeg, png, tiff, webp, gif, avif)`, 'unsupported_format');
  }
  const width = meta.autoOrient?.width ?? meta.width ?? 0;
  const height = meta.autoOrient?.height ?? meta.height ?? 0;
  checkPixels(width, height);
  const downscale = settings.maxEdge > 0 && Math.max(width, height) > settings.maxEdge;
  try {
    // A CMYK JPEG decodes, but most image tools and models read it wrong: convert it too.
    if (format === 'jpeg' && !downscale && meta.space !== 'cmyk') {
      await decodeCheck(input);
      if (body) await writeFile(path, body).catch((err: unknown) => Promise.reject(namingPath(err, path)));
      await deriveFromFile(path, path, widths, settings.jpegQuality);
      return { receivedFormat: format, width, height };
    }
    const converted = `${path}.jpg`;
    let pipeline = image(input, { pages: 1 }).autoOrient().toColourspace('srgb');
    if (downscale) pipeline = pipeline.resize(settings.maxEdge, settings.maxEdge, { fit: 'inside', withoutEnlargement: true });
    const info = await vips(() => pipeline.flatten({ background: '#ffffff' }).jpeg({ quality: settings.jpegQuality }).toFile(converted));
    await rename(converted, path);
    // A converted image's derivatives come from what is stored: a second decode, of a JPEG, for the rare image that is not one.
    await deriveFromFile(path, path, widths, settings.jpegQuality);
    return { receivedFormat: format, width: info.width, height: info.height, stored: { bytes: info.size, sha256: await sha256Of(path) } };
  } catch (err) {
    await rm(`${path}.jpg`, { force: true });
    if (err instanceof PermanentError || fileSystemErrno(err) !== undefined) throw err;
    // libvips writing the converted image or a derivative onto a full disk: this machine's problem, not the image's.
    throw vipsSystemError(err, path) ?? decodeFailure(err, input, path);
  }
}

/** validateImage behind a pool sized to the cores, so a burst of TIFFs never stalls the network side. */
export function createValidator(settings: ValidateSettings, concurrency = availableParallelism()): (path: string, body?: Buffer) => Promise<ValidatedImage> {
  const limit = pLimit(concurrency);
  return (path, body) => limit(() => validateImage(path, settings, body));
}
