/**
 * normaliseUrl skips the WHATWG parser for URLs already in its form: it must
 * give exactly what the parser gives, for tricky URLs and every real one.
 */
import { describe, expect, it } from 'vitest';
import { normaliseUrl } from '../src/input/rows.js';
import { multimediaSamples, sampleText } from './helpers/samples.js';
import { TRICKY_URLS as TRICKY } from './helpers/tricky-urls.js';

function whatwg(raw: string): { url: string; host: string } | undefined {
  try {
    const u = new URL(raw);
    if ((u.protocol !== 'http:' && u.protocol !== 'https:') || u.hostname === '' || u.port === '0') return undefined;
    return { url: u.href, host: u.hostname };
  } catch {
    return undefined;
  }
}


describe('normaliseUrl', () => {
  it('gives what the WHATWG parser gives, for tricky URLs', () => {
    for (const raw of TRICKY) expect(normaliseUrl(raw), raw).toEqual(whatwg(raw));
  });

  it('gives what the WHATWG parser gives, for every identifier in the real GBIF samples', () => {
    let checked = 0;
    for (const file of multimediaSamples()) {
      const [header, ...rows] = sampleText(file).split('\n');
      const column = (header as string).split('\t').findIndex((h) => /(^|\/)identifier$/.test(h.trim()));
      for (const row of rows) {
        const raw = (row.split('\t')[column] ?? '').trim();
        if (raw === '') continue;
        expect(normaliseUrl(raw), raw).toEqual(whatwg(raw));
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(10_000);
  });
});
