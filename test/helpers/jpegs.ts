/** JPEGs the scan's tests share: libjpeg-turbo's layouts (fixtures/jpeg) and noise made from a fixed seed. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';

export const fixture = (name: string) => readFileSync(join(__dirname, '..', '..', 'fixtures', 'jpeg', name));

/** Baseline JPEGs of layouts sharp does not write (fixtures/jpeg/SOURCES.md). */
export const LIBJPEG_TURBO = ['restart-rows.jpg', 'restart-blocks-422.jpg', 'scan-per-component.jpg', 'grey-sampled-2x2.jpg'];

/** Paper-like noise from a fixed seed, so every run damages the same bytes (sharp's own noise differs each call). */
export function noise(width: number, height: number, channels: 1 | 3 = 3) {
  let seed = width * 7919 + height;
  const pixels = Buffer.alloc(width * height * channels);
  for (let i = 0; i < pixels.length; i++) pixels[i] = 150 + ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) % 100) - 50;
  return sharp(pixels, { raw: { width, height, channels } }).blur(0.6);
}
