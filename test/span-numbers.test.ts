/**
 * Stretches of a chunk numbered by their bytes (an all-ASCII chunk) and by a
 * Map (any other chunk) must get the same numbers as the Map alone would
 * give: the byte table is a cache in front of the numbering, never a second
 * numbering. Keys here differ in one byte, at every position of lengths
 * that are and are not multiples of four, and are many enough to fill the
 * table's probe chains.
 */
import { describe, expect, it } from 'vitest';
import { SpanNumbers } from '../src/ingest/span-numbers.js';

/** A numbering as numbering.ts keeps one: a Map from the stretch to its number, in order of first sight. */
function numbering(): { numberOf: (key: string) => number; map: Map<string, number> } {
  const map = new Map<string, number>();
  return {
    map,
    numberOf: (key) => {
      let n = map.get(key);
      if (n === undefined) {
        n = map.size;
        map.set(key, n);
      }
      return n;
    },
  };
}

/** Numbers the stretches of each chunk (given as lines) through SpanNumbers, as the classifier does. */
function numberChunks(spans: SpanNumbers, chunks: readonly string[][]): number[] {
  const numbers: number[] = [];
  for (const lines of chunks) {
    const text = lines.join('\n');
    const bytes = Buffer.from(text, 'utf8');
    spans.chunk(bytes.length === text.length ? bytes : undefined);
    let at = 0;
    for (const line of lines) {
      numbers.push(spans.of(text, at, at + line.length));
      at += line.length + 1;
    }
  }
  return numbers;
}

describe('SpanNumbers', () => {
  it('numbers stretches alike by their bytes and by the Map, whatever chunk they come in', () => {
    const keys: string[] = [];
    for (const length of [1, 3, 4, 5, 8, 13, 110]) {
      const base = 'Herbarium of the example.org, CC BY 4.0 '.repeat(3).slice(0, length);
      keys.push(base);
      // The same length, one byte changed at each position.
      for (let i = 0; i < length; i++) keys.push(base.slice(0, i) + String.fromCharCode(base.charCodeAt(i) ^ 1) + base.slice(i + 1));
    }
    // Non-ASCII keys come only in chunks that are not all ASCII; an ASCII key comes in both kinds.
    const accented = ['Muséum national', 'Jardín Botánico', 'Ботанический сад'];
    let seed = 7;
    const pick = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed;
    };
    const chunks: string[][] = [];
    for (let c = 0; c < 40; c++) {
      const lines = Array.from({ length: 50 }, () => keys[pick() % keys.length] as string);
      // Repeats in a row take the last-stretch path.
      lines.push(lines[lines.length - 1] as string, lines[lines.length - 1] as string);
      if (c % 3 === 0) lines.push(accented[pick() % accented.length] as string);
      chunks.push(lines);
    }
    // Each key right after its base (the last-stretch path's compare at every position).
    chunks.push(keys.flatMap((key) => [keys.find((k) => k.length === key.length) as string, key]));
    const reference = numbering();
    const expected = chunks.flat().map((key) => reference.numberOf(key));
    const used = numbering();
    expect(numberChunks(new SpanNumbers(used.numberOf), chunks)).toEqual(expected);
    expect(used.map).toEqual(reference.map);
  });

  it('finds each of tens of thousands of stretches again (long probe chains), with the Map asked once for each', () => {
    const keys = Array.from({ length: 60_000 }, (_, i) => `herbarium${i}.example.org`);
    let asked = 0;
    const reference = numbering();
    const spans = new SpanNumbers((key) => {
      asked++;
      return reference.numberOf(key);
    });
    const chunks: string[][] = [];
    for (let i = 0; i < keys.length; i += 1000) chunks.push(keys.slice(i, i + 1000));
    const first = numberChunks(spans, chunks);
    expect(first).toEqual(keys.map((_, i) => i));
    // Again, in another order and other chunks: found by their bytes, the Map not asked again.
    const again = [...keys].reverse();
    const second = numberChunks(spans, [again.slice(0, 30_000), again.slice(30_000)]);
    expect(second).toEqual(again.map((k) => reference.map.get(k)));
    expect(asked).toBe(60_000);
  });
});
