import { describe, expect, it } from 'vitest';
import { readLineChunks } from '../src/input/lines.js';

/**
 * The bytes in pieces of `size`, each in the same buffer, which is scribbled
 * over as soon as the next piece is asked for: what a plain file's reads do
 * (one buffer reused), made loud, so a chunk that kept a view of the buffer
 * comes out damaged.
 */
async function* reusedPieces(bytes: Buffer, size: number): AsyncGenerator<Buffer> {
  const buf = Buffer.alloc(size);
  for (let at = 0; at < bytes.length; at += size) {
    const n = bytes.copy(buf, 0, at, Math.min(at + size, bytes.length));
    yield buf.subarray(0, n);
    buf.fill(0x23); // '#'
  }
}

function sampleText(): string {
  const lines: string[] = [];
  for (let i = 0; i < 3_000; i++) lines.push(`${i}\t${'x'.repeat(i % 211)}\tNé ${'ü'.repeat(i % 3)}`);
  return lines.join('\n') + '\n';
}

describe('readLineChunks over an input that reuses its buffer', () => {
  it.each([
    ['movable chunks (ingest, sent to a worker and read later)', true],
    ['views read in place (exclude)', false],
  ])('hands on every line whole: %s', async (_name, movable) => {
    const text = sampleText();
    for (const size of [7, 1000, 4096, 65_537]) {
      const chunks: Buffer[] = [];
      for await (const chunk of readLineChunks(reusedPieces(Buffer.from(text), size), { movable })) {
        // Movable chunks are kept as they come, to be read after the input has moved on; views are copied at once, as exclude reads them.
        chunks.push(movable ? chunk : Buffer.from(chunk));
      }
      expect(chunks.map((c) => c.toString('utf8')).join('\n') + '\n').toBe(text);
    }
  });
});
