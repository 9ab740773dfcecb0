/**
 * normaliseUrl skips the WHATWG parser for URLs already in its form: it must
 * give exactly what the parser gives, for tricky URLs and every real one.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { normaliseUrl } from '../src/input/rows.js';
import { SAMPLES, samplesPresent } from './helpers/samples.js';

function whatwg(raw: string): { url: string; host: string } | undefined {
  try {
    const u = new URL(raw);
    if ((u.protocol !== 'http:' && u.protocol !== 'https:') || u.hostname === '' || u.port === '0') return undefined;
    return { url: u.href, host: u.hostname };
  } catch {
    return undefined;
  }
}

const TRICKY = [
  'https://img.example.org/a.jpg',
  'https://img.example.org/a.jpg?size=full&x=1',
  'HTTPS://img.example.org/a.jpg',
  'https://IMG.example.org/a.jpg',
  'https://img.example.org',
  'https://img.example.org?x',
  'https://img.example.org:443/a.jpg',
  'http://img.example.org:80/a.jpg',
  'http://img.example.org:8080/a.jpg',
  'https://user:pw@img.example.org/a.jpg',
  'https://img.example.org/a/./b/../c.jpg',
  'https://img.example.org/a/%2e%2E/c.jpg',
  'https://img.example.org/.well-known/x',
  'https://img.example.org/a b.jpg',
  'https://img.example.org/a"b.jpg',
  "https://img.example.org/a.jpg?name='x'",
  "https://img.example.org/it's.jpg",
  'https://img.example.org/a.jpg#frag',
  'https://img.example.org/a\\b.jpg',
  'https://img.example.org/{a}|^`.jpg',
  'https://img.example.org/%zz/%41.jpg',
  'https://img.example.org/ünï.jpg',
  'https://xn--nxasmq6b.example.org/a.jpg',
  'https://xn--zz.example.org/a.jpg',
  'https://img.example.org./a.jpg',
  'https://img..example.org/a.jpg',
  'https://-img.example.org/a.jpg',
  'https://1.2.3/a.jpg',
  'https://127.0.0.1/a.jpg',
  'https://0x7f.1/a.jpg',
  'https://example.123/a.jpg',
  'https://a.b-c.d/x',
  'https://localhost/x',
  'https://a/x',
  'https://repo.rbge.org.uk/image_server.php?kind=1500&path_base64=L2hlcmJhcml1bV9zcGVjaW1lbl9zY2Fucy9FMDAvMzIvNzMvOTYuanBn',
  'https://n2t.net/ark:/65665/m3a9f4c5e2-5c4b-4d5a-8f3e-1a2b3c4d5e6f',
  'https://images.collections.yale.edu/iiif/2/ypm:1234/full/!1920,1920/0/default.jpg',
  'ftp://img.example.org/a.jpg',
  'https://img.example.org/a.jpg\t',
  ' https://img.example.org/a.jpg',
];

describe('normaliseUrl', () => {
  it('gives what the WHATWG parser gives, for tricky URLs', () => {
    for (const raw of TRICKY) expect(normaliseUrl(raw), raw).toEqual(whatwg(raw));
  });

  it.skipIf(!samplesPresent)('gives what the WHATWG parser gives, for every identifier in the real GBIF samples', () => {
    let checked = 0;
    for (const dir of readdirSync(join(SAMPLES, 'gbif'))) {
      const files = readdirSync(join(SAMPLES, 'gbif', dir)).filter((f) => /multimedia/i.test(f) && f.endsWith('.txt'));
      for (const file of files) {
        const [header, ...rows] = readFileSync(join(SAMPLES, 'gbif', dir, file), 'utf8').split('\n');
        const column = (header as string).split('\t').findIndex((h) => /(^|\/)identifier$/.test(h.trim()));
        for (const row of rows) {
          const raw = (row.split('\t')[column] ?? '').trim();
          if (raw === '') continue;
          expect(normaliseUrl(raw), raw).toEqual(whatwg(raw));
          checked++;
        }
      }
    }
    expect(checked).toBeGreaterThan(10_000);
  });
});
