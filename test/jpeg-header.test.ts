import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { readJpegFrame } from '../src/validate/jpeg-header.js';

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
