/**
 * The real IIIF manifests and info.json files in fixtures/samples/iiif,
 * served from loopback with every `id`/`@id` moved onto a test host (paths,
 * queries and percent-encoding kept), each the identifier of its own gbifID.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from './helpers/cli.js';
import { imageServers } from './helpers/image-server.js';
import { workspace } from './helpers/run.js';
import { SAMPLES } from './helpers/samples.js';

const IIIF = join(SAMPLES, 'iiif');

// Canvases with an image, read independently (a Python count of sequences[0].canvases / items).
// SOURCES.md says 3 for bodleian-33c2e37e, 2 for northwestern and 12 for wellcome; the files have 1, 1 and 10.
const CANVASES: Record<string, number> = {
  'v2/bodleian-f45ff5a5.manifest.v2.json': 2,
  'v2/europeana-3000126341277.manifest.v2.json': 2,
  'v2/gallica-bnf-btv1b53243704g.manifest.v2.json': 5,
  'v2/harvardartmuseums-299843.manifest.v2.json': 6,
  'v2/leiden-univ-130206.manifest.v2.json': 1,
  'v2/loc-87694060.manifest.v2.json': 1,
  'v2/stanford-vg994wz9415.manifest.v2.json': 1,
  'v2/yale-osbornfa1.manifest.v2.json': 1,
  'v3/bgbm-herbarium-B100469974.manifest.v3.json': 1,
  'v3/bodleian-33c2e37e.manifest.v3.json': 1,
  'v3/iiif-cookbook-0005-image-service.manifest.v3.json': 1,
  'v3/internetarchive-masterhighwaypla00char.manifest.v3.json': 204,
  'v3/ncsu-unccmc00094.manifest.v3.json': 1,
  'v3/northwestern-faf0c573.manifest.v3.json': 1,
  'v3/riksarkivet-40008772.manifest.v3.json': 1,
  'v3/wellcome-b28857021.manifest.v3.json': 10,
};

/** Moves every id onto `origin`, keeping path, query and encoding; contexts and profiles stay as they are. */
function rehost(value: unknown, origin: string): unknown {
  if (Array.isArray(value)) return value.map((v) => rehost(v, origin));
  if (typeof value !== 'object' || value === null) return value;
  return Object.fromEntries(
    Object.entries(value).map(([k, v]) => [
      k,
      (k === 'id' || k === '@id') && typeof v === 'string' ? v.replace(/^https?:\/\/[^/?#]+/, origin) : rehost(v, origin),
    ]),
  );
}

describe('herbdl run: the real IIIF samples', async () => {
  const [documents, images] = await imageServers(2, 20);
  images!.imageApi();
  const manifests = Object.keys(CANVASES);
  const infos = readdirSync(join(IIIF, 'info'))
    .sort()
    .map((f) => `info/${f}`);
  expect(readdirSync(join(IIIF, 'v2')).length + readdirSync(join(IIIF, 'v3')).length).toBe(manifests.length);
  const rows = [...manifests, ...infos].map((name, i): [number, string] => {
    const body = JSON.stringify(rehost(JSON.parse(readFileSync(join(IIIF, name), 'utf8')), images!.origin));
    return [3001 + i, documents!.route(`/${name}`, { kind: 'json', body })];
  });
  const ws = workspace(tempDir(), rows);
  const run = await ws.run();
  const requests = images!.requests.map((r) => r.path);

  it('downloads every canvas of every manifest and one image per info.json', () => {
    expect(run.json).toMatchObject({ idsDone: rows.length, idsFailed: 0, iiifDocuments: rows.length });
    rows.forEach(([gbifId, ], i) => {
      const expected = i < manifests.length ? (CANVASES[manifests[i] as string] as number) : 1;
      expect(ws.files().filter((f) => f.includes(`/${gbifId}-`)), manifests[i] ?? infos[i - manifests.length]).toHaveLength(expected);
    });
  });

  it('asks each image once, first time right: no thumbnails, logos or other services', () => {
    // The cookbook manifest's one image is the Göttingen reference image, whose info.json is a sample
    // too: the same request, fetched once for both gbifIDs.
    const total = Object.values(CANVASES).reduce((a, b) => a + b, 0) + infos.length - 1;
    expect(requests).toHaveLength(total);
    expect(new Set(requests).size).toBe(total);
    expect(requests.every((p) => /\/full\/(\d+,|max|full)\/0\/(default|native)\.jpg$/.test(p))).toBe(true);
  });

  it('speaks Image API 1.1 to 1.1 services (native.jpg) and 2 or 3 to the rest', () => {
    expect(requests.filter((p) => p.includes('btv1b53243704g') && p.endsWith('/full/1600,/0/native.jpg'))).toHaveLength(6);
    expect(requests.filter((p) => p.startsWith('/iiif/b38081da') && p.endsWith('/full/1600,/0/native.jpg'))).toHaveLength(1);
  });

  it('keeps ids with a query string, percent-encoding, ! and colons intact', () => {
    expect(requests).toEqual(
      expect.arrayContaining([
        '/fcgi-bin/iipsrv.fcgi?IIIF=/manifestation/viewer/60/82/67/60826765847502039061478934746532282060.jp2/full/1600,/0/default.jpg',
        '/iiif/2/hdl%3A1887.1%2Fitem%3A130206/full/1600,/0/default.jpg',
        '/iiif/3/B!10!04!69!97!B_10_0469974.jpg/full/1600,/0/default.jpg',
        '/image-services/iiif/service:gmd:gmd385:g3851:g3851e:ct004586/full/1600,/0/default.jpg',
      ]),
    );
  });
});
