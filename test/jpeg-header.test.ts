import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { jpegStructure, readJpegFrame } from '../src/validate/jpeg-header.js';
import { validateImage } from '../src/validate/validate-image.js';
import { tempDir } from './helpers/cli.js';

describe('readJpegFrame', () => {
  it('reads size and components of baseline, progressive, grey and CMYK JPEGs made by sharp', async () => {
    const base = sharp({ create: { width: 123, height: 45, channels: 3, background: '#abcdef' } });
    expect(readJpegFrame(await base.clone().jpeg().toBuffer())).toEqual({ width: 123, height: 45, components: 3 });
    expect(readJpegFrame(await base.clone().jpeg({ progressive: true }).toBuffer())).toEqual({ width: 123, height: 45, components: 3 });
    expect(readJpegFrame(await base.clone().toColourspace('b-w').jpeg().toBuffer())).toEqual({ width: 123, height: 45, components: 1 });
    expect(readJpegFrame(await base.clone().toColourspace('cmyk').jpeg().toBuffer())).toEqual({ width: 123, height: 45, components: 4 });
  });

  it('gives up on what is not a JPEG or has no frame header', () => {
    expect(readJpegFrame(Buffer.from('<html>'))).toBeUndefined();
    expect(readJpegFrame(Buffer.from([0xff, 0xd8, 0xff, 0xda, 0x00, 0x08, 1, 2, 3, 4, 5, 6]))).toBeUndefined();
    expect(readJpegFrame(Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0x00]))).toBeUndefined();
  });
});

describe('jpegStructure (--check structure)', () => {
  const dir = tempDir();
  const noisy = (progressive: boolean, restarts = false) =>
    sharp({ create: { width: 300, height: 200, channels: 3, background: '#000', noise: { type: 'gaussian', mean: 128, sigma: 50 } } })
      .jpeg({ progressive, ...(restarts ? { optimiseScans: true } : {}) })
      .toBuffer();

  it('finds the end of baseline and progressive JPEGs, and calls every cut short truncated', async () => {
    for (const jpeg of [await noisy(false), await noisy(true), await noisy(true, true)]) {
      expect(jpegStructure(jpeg)).toBe('whole');
      // Bytes some servers append after the end-of-image marker do not matter.
      expect(jpegStructure(Buffer.concat([jpeg, Buffer.from('\r\n')]))).toBe('whole');
      for (let cut = 4; cut < jpeg.length; cut += Math.max(1, Math.floor(jpeg.length / 97))) {
        expect(jpegStructure(jpeg.subarray(0, cut)), `cut at ${cut} of ${jpeg.length}`).toBe('truncated');
      }
      expect(jpegStructure(jpeg.subarray(0, jpeg.length - 1))).toBe('truncated');
    }
    expect(jpegStructure(Buffer.from('<html>'))).toBe('malformed');
  });

  it('keeps a whole JPEG and fails one cut short, without decoding, and writes only what it keeps', async () => {
    const jpeg = await noisy(false);
    const settings = { jpegQuality: 90, maxEdge: 0, check: 'structure' as const };
    await expect(validateImage(`${dir}/whole.part`, settings, jpeg)).resolves.toMatchObject({ receivedFormat: 'jpeg', width: 300, height: 200 });
    await expect(validateImage(`${dir}/cut.part`, settings, jpeg.subarray(0, jpeg.length >> 1))).rejects.toMatchObject({ code: 'truncated' });
    const { existsSync } = await import('node:fs');
    expect([existsSync(`${dir}/whole.part`), existsSync(`${dir}/cut.part`)]).toEqual([true, false]);
  });
});
