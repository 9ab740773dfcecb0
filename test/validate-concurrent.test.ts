/**
 * Verdicts must not change with what else is decoding. libvips keeps one
 * error buffer per process, so a message read after a failed decode may be
 * another image's: once, under load, a truncated JPEG failed as not_image.
 * And it reports damage met in the last strip it decodes only as a warning,
 * handed to whichever pipeline finishes next: large sheets, decoded shrunk
 * on load, used to pass with bytes lost mid-file, and so did 4:4:4 sheets
 * decoded in full (decode-warnings.ts).
 * Baseline JPEGs are now checked by reading their scans in JS
 * (jpeg-scan.ts), on any validation worker; progressive ones, and PNGs,
 * still by libvips, on one. Here many good, truncated and corrupt images of
 * both kinds are validated at once, in a mixed order, and every verdict is
 * checked, in this thread and on the validation workers a run uses.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { createValidator, type ValidatedImage } from '../src/validate/validate-image.js';
import { tempDir } from './helpers/cli.js';

const noise = (width: number, height: number) =>
  sharp({ create: { width, height, channels: 3, background: '#000', noise: { type: 'gaussian', mean: 128, sigma: 40 } } });

/**
 * Noise from a fixed seed: whether libvips sees bytes lost from a
 * progressive JPEG depends on where they fall, so these must be the same
 * bytes every run (sharp's own noise differs each call).
 */
function seededNoise(width: number, height: number) {
  let seed = width * 7919 + height;
  const pixels = Buffer.alloc(width * height * 3);
  for (let i = 0; i < pixels.length; i++) pixels[i] = 128 + ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) % 80) - 40;
  return sharp(pixels, { raw: { width, height, channels: 3 } });
}

/** Bytes lost in the middle of the entropy-coded data: the file is whole (it ends with its marker) but does not decode. */
function corruptMiddle(jpeg: Buffer): Buffer {
  return Buffer.concat([jpeg.subarray(0, 2000), Buffer.alloc(3000, 0), jpeg.subarray(5000)]);
}

/** Bytes cut out of the middle, the rest (and its end marker) kept: the decode runs out of data in its last rows. */
function lostMiddle(jpeg: Buffer, bytes: number): Buffer {
  const at = Math.floor(jpeg.length / 2);
  return Buffer.concat([jpeg.subarray(0, at), jpeg.subarray(at + bytes)]);
}

interface Case {
  readonly name: string;
  readonly body: Buffer;
  readonly expected: string;
}

async function cases(): Promise<Case[]> {
  const sheet = await noise(400, 600).jpeg().toBuffer();
  const big = await noise(1200, 1800).jpeg().toBuffer();
  const png = await noise(300, 200).png().toBuffer();
  // Without chroma subsampling a decode reads no rows ahead: even in full, such damage shows only in the last strip.
  const sheet444 = await noise(400, 600).jpeg({ chromaSubsampling: '4:4:4' }).toBuffer();
  // Progressive: not read by the scan, decoded by libvips (with its warnings read) beside the scans.
  const progressive = await seededNoise(400, 600).jpeg({ progressive: true }).toBuffer();
  const bigProgressive = await seededNoise(1200, 1800).jpeg({ progressive: true }).toBuffer();
  return [
      { name: 'sheet', body: sheet, expected: 'ok' },
      { name: 'big', body: big, expected: 'ok' },
      { name: 'png', body: png, expected: 'ok' },
      { name: 'sheet-cut', body: sheet.subarray(0, Math.floor(sheet.length * 0.6)), expected: 'truncated' },
      { name: 'big-cut', body: big.subarray(0, Math.floor(big.length * 0.7)), expected: 'truncated' },
      { name: 'png-cut', body: png.subarray(0, Math.floor(png.length * 0.5)), expected: 'truncated' },
      { name: 'sheet-corrupt', body: corruptMiddle(sheet), expected: 'corrupt' },
      { name: 'sheet-lost', body: lostMiddle(sheet, 700), expected: 'corrupt' },
      // Shrunk on load, these run out of data only in the last strip the decode reads.
      { name: 'big-corrupt', body: corruptMiddle(big), expected: 'corrupt' },
      { name: 'big-lost', body: lostMiddle(big, 700), expected: 'corrupt' },
      { name: 'sheet-444', body: sheet444, expected: 'ok' },
      { name: 'sheet-444-lost', body: lostMiddle(sheet444, 700), expected: 'corrupt' },
      { name: 'progressive', body: progressive, expected: 'ok' },
      { name: 'progressive-cut', body: progressive.subarray(0, Math.floor(progressive.length * 0.6)), expected: 'truncated' },
      { name: 'progressive-lost', body: lostMiddle(progressive, 700), expected: 'corrupt' },
      { name: 'big-progressive-corrupt', body: corruptMiddle(bigProgressive), expected: 'corrupt' },
      { name: 'big-progressive-lost', body: lostMiddle(bigProgressive, 700), expected: 'corrupt' },
      { name: 'html', body: Buffer.from('<!DOCTYPE html><html><body>Terms of use</body></html>'), expected: 'not_image' },
  ];
}

/**
 * Validates 240 images at once, each kind beside every other, and returns
 * every verdict that is not the expected one. Every third comes in its file
 * (as a body over 512 KiB does in a run: a worker reads it back, into memory
 * it reuses), the others in memory.
 */
async function wrongVerdicts(all: Case[], validate: (path: string, body?: Buffer) => Promise<ValidatedImage>, dir: string) {
  const jobs = Array.from({ length: 240 }, (_, i) => {
    // A fixed, mixed order: each kind runs beside every other.
    const c = all[(i * 7) % all.length]!;
    const path = join(dir, `${i}-${c.name}.part`);
    const inFile = i % 3 === 0;
    if (inFile) writeFileSync(path, c.body);
    // A copy each time: the worker takes a body's memory.
    return (inFile ? validate(path) : validate(path, Buffer.from(c.body))).then(
      (image) => ({ i, name: c.name, expected: c.expected, got: 'ok', inFile, written: existsSync(path), synced: image.synced === true, whole: existsSync(path) && readFileSync(path).equals(c.body) }),
      (err: { code?: string }) => ({ i, name: c.name, expected: c.expected, got: err.code ?? String(err), inFile, written: existsSync(path), synced: false, whole: false }),
    );
  });
  const verdicts = await Promise.all(jobs);
  expect(new Set(verdicts.map((v) => v.name)).size).toBe(all.length);
  // Of the bodies in memory, only what passed is written; a failed body leaves no file behind.
  const inMemory = verdicts.filter((v) => !v.inFile);
  expect(inMemory.filter((v) => v.written).map((v) => v.got)).toEqual(inMemory.filter((v) => v.got === 'ok').map(() => 'ok'));
  // Said to be synced (so publishing skips its fsync): only a body from memory written as it came, and every baseline one.
  expect(verdicts.filter((v) => v.synced && (v.inFile || !v.whole))).toEqual([]);
  const baseline = inMemory.filter((v) => ['sheet', 'big', 'sheet-444'].includes(v.name));
  expect(baseline.length).toBeGreaterThan(0);
  expect(baseline.filter((v) => !v.synced)).toEqual([]);
  return verdicts.filter((v) => v.got !== v.expected);
}

describe('validation under load', () => {
  const dir = tempDir();

  it('gives every image the same verdict whatever runs beside it', async () => {
    const validate = createValidator({ jpegQuality: 90, maxEdge: 0, check: 'decode' }, 8);
    expect(await wrongVerdicts(await cases(), validate, dir)).toEqual([]);
  });

  it('gives the same verdicts on the validation worker a run uses, derivatives asked or not', async () => {
    // The built copy, by a path the type checker does not follow: the worker runs compiled JavaScript.
    const built = '../dist/validate/validator-pool.js';
    const { createValidatorPool } = (await import(built)) as typeof import('../src/validate/validator-pool.js');
    for (const derive of [[], [256]]) {
      const pool = createValidatorPool({ jpegQuality: 90, maxEdge: 0, check: 'decode', derive });
      mkdirSync(join(dir, `pool-${derive.length}`));
      try {
        expect(await wrongVerdicts(await cases(), (path, body) => pool.validate(path, body), join(dir, `pool-${derive.length}`))).toEqual([]);
      } finally {
        await pool.close();
      }
    }
  });
});
