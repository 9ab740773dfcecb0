/**
 * Verdicts must not change with what else is decoding. libvips keeps one
 * error buffer per process, so a message read after a failed decode may be
 * another image's: once, under load, a truncated JPEG failed as not_image.
 * Here many good, truncated and corrupt images are validated at once, in a
 * mixed order, and every verdict is checked.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { createValidator } from '../src/validate/validate-image.js';
import { tempDir } from './helpers/cli.js';

const noise = (width: number, height: number) =>
  sharp({ create: { width, height, channels: 3, background: '#000', noise: { type: 'gaussian', mean: 128, sigma: 40 } } });

/** Bytes lost in the middle of the entropy-coded data: the file is whole (it ends with its marker) but does not decode. */
function corruptMiddle(jpeg: Buffer): Buffer {
  return Buffer.concat([jpeg.subarray(0, 2000), Buffer.alloc(3000, 0), jpeg.subarray(5000)]);
}

describe('validation under load', () => {
  const dir = tempDir();

  it('gives every image the same verdict whatever runs beside it', async () => {
    const sheet = await noise(400, 600).jpeg().toBuffer();
    const big = await noise(1200, 1800).jpeg().toBuffer();
    const png = await noise(300, 200).png().toBuffer();
    const cases: { name: string; body: Buffer; expected: string }[] = [
      { name: 'sheet', body: sheet, expected: 'ok' },
      { name: 'big', body: big, expected: 'ok' },
      { name: 'png', body: png, expected: 'ok' },
      { name: 'sheet-cut', body: sheet.subarray(0, Math.floor(sheet.length * 0.6)), expected: 'truncated' },
      { name: 'big-cut', body: big.subarray(0, Math.floor(big.length * 0.7)), expected: 'truncated' },
      { name: 'png-cut', body: png.subarray(0, Math.floor(png.length * 0.5)), expected: 'truncated' },
      { name: 'sheet-corrupt', body: corruptMiddle(sheet), expected: 'corrupt' },
      { name: 'html', body: Buffer.from('<!DOCTYPE html><html><body>Terms of use</body></html>'), expected: 'not_image' },
    ];
    const validate = createValidator({ jpegQuality: 90, maxEdge: 0, check: 'decode' }, 8);
    const jobs = Array.from({ length: 240 }, (_, i) => {
      // A fixed, mixed order: each kind runs beside every other.
      const c = cases[(i * 5) % cases.length]!;
      const path = join(dir, `${i}-${c.name}.part`);
      return validate(path, c.body).then(
        () => ({ i, name: c.name, expected: c.expected, got: 'ok', written: existsSync(path) }),
        (err: { code?: string }) => ({ i, name: c.name, expected: c.expected, got: err.code ?? String(err), written: existsSync(path) }),
      );
    });
    const verdicts = await Promise.all(jobs);
    const wrong = verdicts.filter((v) => v.got !== v.expected);
    expect(wrong).toEqual([]);
    // Only what passed is written; a failed body leaves no file behind.
    expect(verdicts.filter((v) => v.written).map((v) => v.got)).toEqual(verdicts.filter((v) => v.got === 'ok').map(() => 'ok'));
    expect(new Set(verdicts.map((v) => v.name)).size).toBe(cases.length);
  });
});
