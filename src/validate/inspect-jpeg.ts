/**
 * Checking a JPEG that is to be kept exactly as it is, as `adopt` takes an
 * earlier download's files: the check `run` applies to a JPEG it keeps
 * (validate-image.ts), and refusals named for what the file is instead.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { PermanentError } from '../errors.js';
import { decodeFailure, imageKind } from './decode-failure.js';
import { readJpegFrame, type JpegFrame } from './jpeg-header.js';
import { readBack, readBackKept } from './read-back.js';
import { checkPlainJpeg, checkWithoutLibvips, type ValidateSettings } from './validate-image.js';

/** A plain JPEG on disk, as `adopt` takes it: checked as `run` checks what it keeps, never rewritten. */
export interface InspectedJpeg {
  readonly width: number;
  readonly height: number;
  readonly bytes: number;
  readonly sha256: string;
}

/**
 * Checks a file that is to be kept exactly as it is: a plain (RGB or grey)
 * JPEG that passes the same check `run` applies to a JPEG it keeps (the
 * scan, or a decode of one the scan does not read; the marker walk of
 * --check structure). Anything else fails with
 * its reason: not_image (an error page), not_jpeg (a PNG, TIFF, ... with a
 * .jpg name: run would have converted it), cmyk_jpeg, truncated, corrupt.
 */
export async function inspectJpeg(path: string, check: ValidateSettings['check']): Promise<InspectedJpeg> {
  return readBack(path, async (input) => {
    // Read back into a buffer readBack lends (read-back.ts); a file too large for that is read whole all the same.
    const data = typeof input === 'string' ? readFileSync(input) : input;
    const frame = plainJpegToInspect(path, data);
    await checkPlainJpeg(data, data, frame, check, path);
    return inspected(data, frame);
  });
}

/** inspectJpeg on a thread without libvips: undefined when only a decode can tell (validator-pool.ts). */
export function inspectWithoutLibvips(path: string, check: ValidateSettings['check']): InspectedJpeg | undefined {
  // Read into kept memory (read-back.ts): all of this is synchronous.
  const data = readBackKept(path);
  if (typeof data === 'string') return undefined;
  const frame = plainJpegToInspect(path, data);
  return checkWithoutLibvips(data, frame, check, path) ? inspected(data, frame) : undefined;
}

/** The frame of a file to inspect, once it is known to be a plain JPEG with a size. */
function plainJpegToInspect(path: string, data: Buffer): JpegFrame {
  const kind = imageKind(data.subarray(0, 64));
  if (kind === 'unknown') throw new PermanentError(`${path}: not an image (an error page saved as an image?)`, 'not_image');
  if (kind !== 'jpeg') throw new PermanentError(`${path}: a ${kind === 'unreadable' ? 'JPEG 2000, BMP or HEIC' : kind.toUpperCase()} file named .jpg, not a JPEG`, 'not_jpeg');
  const frame = readJpegFrame(data);
  if (frame?.components === 4) throw new PermanentError(`${path}: a CMYK JPEG (run converts these to sRGB)`, 'cmyk_jpeg');
  if (!frame || frame.width === 0 || frame.height === 0) throw decodeFailure(new Error('no frame header'), data, path);
  return frame;
}

function inspected(data: Buffer, frame: JpegFrame): InspectedJpeg {
  return { width: frame.width, height: frame.height, bytes: data.length, sha256: createHash('sha256').update(data).digest('hex') };
}
