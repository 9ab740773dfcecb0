/**
 * The image at 1/8 scale that the scan keeps for derivatives (jpeg-dc.ts):
 * each block's DC, the average libjpeg's 1/8 decode gives it. It must match
 * a full decode averaged over each 8 x 8 block for every layout the scan
 * reads, be left to libvips wherever EXIF, a colour profile or RGB
 * components would change the pixels, and be what a run's derivatives of a
 * large sheet are resized from, on the validation workers too.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { scanJpeg } from '../src/validate/jpeg-scan.js';
import { createValidator } from '../src/validate/validate-image.js';
import { tempDir } from './helpers/cli.js';
import { fixture, LIBJPEG_TURBO, noise } from './helpers/jpegs.js';

/** A full decode averaged over each 8 x 8 block: what the 1/8 image should hold, up to rounding and chroma. */
async function blockMeans(jpeg: Buffer): Promise<{ data: Uint8Array; width: number; height: number; channels: number }> {
  // A grey JPEG as one band (sharp makes some sRGB on the way out).
  const grey = (await sharp(jpeg).metadata()).channels === 1;
  const { data, info } = await (grey ? sharp(jpeg).toColourspace('b-w') : sharp(jpeg)).raw().toBuffer({ resolveWithObject: true });
  const width = Math.ceil(info.width / 8);
  const height = Math.ceil(info.height / 8);
  const out = new Uint8Array(width * height * info.channels);
  for (let by = 0; by < height; by++) {
    for (let bx = 0; bx < width; bx++) {
      for (let c = 0; c < info.channels; c++) {
        let sum = 0;
        let n = 0;
        for (let y = by * 8; y < Math.min(info.height, by * 8 + 8); y++) for (let x = bx * 8; x < Math.min(info.width, bx * 8 + 8); x++, n++) sum += data[(y * info.width + x) * info.channels + c] as number;
        out[(by * width + bx) * info.channels + c] = Math.round(sum / n);
      }
    }
  }
  return { data: out, width, height, channels: info.channels };
}

const meanDifference = (a: Uint8Array, b: Uint8Array) => a.reduce((sum, v, i) => sum + Math.abs(v - (b[i] as number)), 0) / a.length;

describe('the 1/8 image the scan keeps for derivatives', () => {
  const dir = tempDir();

  it('is each block of a full decode, averaged, for every layout the scan reads', async () => {
    const layouts: [string, Buffer, number][] = [
      // The bound: 4:4:4 and grey are the blocks' averages up to rounding; subsampled chroma is repeated where libjpeg may smooth it.
      ['4:4:4', await noise(401, 599).jpeg({ quality: 95, chromaSubsampling: '4:4:4' }).toBuffer(), 1],
      ['grey', await noise(333, 17, 1).jpeg({ quality: 40 }).toBuffer(), 1],
      ['4:2:0', await noise(1001, 777).jpeg({ quality: 70 }).toBuffer(), 4],
      ['4:2:0 sheet', await noise(1600, 2400).jpeg({ quality: 85 }).toBuffer(), 4],
      ...LIBJPEG_TURBO.map((name): [string, Buffer, number] => [name, fixture(name), 5]),
    ];
    for (const [name, jpeg, bound] of layouts) {
      const scan = scanJpeg(jpeg, { dc: true });
      expect(scan.verdict, name).toBe('whole');
      const dc = scan.verdict === 'whole' ? scan.dc : undefined;
      const means = await blockMeans(jpeg);
      expect(dc?.info, name).toEqual({ width: means.width, height: means.height, channels: means.channels });
      expect(meanDifference(dc!.data, means.data), name).toBeLessThan(bound);
    }
    // Asked for nothing, the scan keeps nothing.
    expect(scanJpeg(fixture('restart-rows.jpg'))).toEqual({ verdict: 'whole' });
  });

  it('is left to libvips where EXIF, a colour profile or RGB components change the pixels a decode gives', async () => {
    const sheet = noise(160, 240);
    const rgb = Buffer.from(await sheet.jpeg({ chromaSubsampling: '4:4:4' }).toBuffer());
    // Component IDs R, G, B: libjpeg takes the three as RGB, not YCbCr.
    const sof = rgb.indexOf(Buffer.from([0xff, 0xc0]));
    for (const [c, id] of [82, 71, 66].entries()) rgb[sof + 10 + c * 3] = id;
    const sos = rgb.indexOf(Buffer.from([0xff, 0xda]));
    for (const [c, id] of [82, 71, 66].entries()) rgb[sos + 5 + c * 2] = id;
    const cases = [await sheet.withMetadata({ orientation: 6 }).jpeg().toBuffer(), await sheet.withIccProfile('p3').jpeg().toBuffer(), rgb];
    for (const jpeg of cases) expect(scanJpeg(jpeg, { dc: true })).toEqual({ verdict: 'whole' });
  });

  it('is what a large sheet derivative is resized from, with no decode, on a run\'s validation workers too', async () => {
    const jpeg = await noise(1600, 2400).jpeg({ quality: 85 }).toBuffer();
    const scan = scanJpeg(jpeg, { dc: true });
    const dc = scan.verdict === 'whole' ? scan.dc! : undefined;
    const expected = await sharp(dc!.data, { raw: dc!.info }).resize(256, 256, { fit: 'inside', withoutEnlargement: true }).jpeg({ quality: 90 }).toBuffer();
    const settings = { jpegQuality: 90, maxEdge: 0, check: 'decode' as const, derive: [256] };
    const validate = createValidator(settings, 2);
    await validate(join(dir, 'here.jpg'), Buffer.from(jpeg));
    expect(readFileSync(join(dir, 'here.jpg.w256')).equals(expected)).toBe(true);
    // The pool sends sheets to every worker: those without libvips hand over the 1/8 image with the sheet.
    const built = '../dist/validate/validator-pool.js';
    const { createValidatorPool } = (await import(built)) as typeof import('../src/validate/validator-pool.js');
    const pool = createValidatorPool(settings);
    try {
      await Promise.all([0, 1, 2, 3].map((i) => pool.validate(join(dir, `pool-${i}.jpg`), Buffer.from(jpeg))));
    } finally {
      await pool.close();
    }
    for (const i of [0, 1, 2, 3]) expect(readFileSync(join(dir, `pool-${i}.jpg.w256`)).equals(expected), `pool-${i}`).toBe(true);
  });
});
