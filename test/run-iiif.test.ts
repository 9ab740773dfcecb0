/**
 * IIIF identifiers, from the repo's own fixtures/iiif: manifests (v2, v3
 * without @context, Image API 1.1), info.json and base-URL identifiers,
 * the size ladder, and what is never taken for a specimen image.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { FIXTURES, herbdl, herbdlJson, tempDir } from './helpers/cli.js';
import { imageServers } from './helpers/image-server.js';
import { writeMultimedia } from './helpers/multimedia.js';
import { workspace } from './helpers/run.js';

function fixture(name: string, origins: Record<string, string>): string {
  let text = readFileSync(join(FIXTURES, 'iiif', name), 'utf8');
  for (const [placeholder, origin] of Object.entries(origins)) text = text.replaceAll(`{{${placeholder}}}`, origin);
  return text;
}

const jpegOf = (width: number) => sharp({ create: { width, height: 20, channels: 3, background: '#8a6' } }).jpeg().toBuffer();

describe('herbdl run: IIIF identifiers', async () => {
  // Manifests on one host, images on another, a host with nothing, a host that refuses widths over 1200 with 501.
  const [manifests, images, missing, limited] = await imageServers(4, 10);
  images!.imageApi();
  limited!.imageApi({ maxWidth: 1200, refuse: 501 });
  const origins = { manifests: manifests!.origin, images: images!.origin, missing: missing!.origin, limited: limited!.origin };
  const serve = (path: string, name: string, contentType?: string) =>
    manifests!.route(path, { kind: 'json', body: fixture(name, origins), ...(contentType ? { contentType } : {}) });

  const v2 = serve('/iiif/herbarium/manifest.v2.json', 'herbarium.manifest.v2.json');
  const v3 = serve('/iiif/herbarium/manifest.v3.json', 'herbarium.manifest.v3.json', 'application/json');
  const v1 = serve('/iiif/v1/manifest', 'image-api-1.manifest.json', 'text/plain');
  const empty = serve('/iiif/empty/manifest', 'empty.manifest.json');
  const collection = serve('/iiif/collection', 'collection.json');
  const notIiif = serve('/not-iiif.json', 'not-iiif.json', 'image/jpeg');
  const gone = serve('/iiif/missing/manifest', 'missing-images.manifest.json');
  images!.route('/plain/label-b.jpg', { kind: 'image' });
  const before = images!.route('/a.jpg', { kind: 'image', body: await jpegOf(30) });
  const after = images!.route('/b.jpg', { kind: 'image', body: await jpegOf(40) });
  const info = images!.route('/iiif/3/limited/info.json', { kind: 'json', body: fixture('limited.info.v3.json', origins) });
  const base = limited!.route('/iiif/2/base-only', { kind: 'redirect', to: '/iiif/2/base-only/info.json' });
  limited!.route('/iiif/2/base-only/info.json', { kind: 'json', body: fixture('base.info.v2.json', origins) });

  const ws = workspace(tempDir(), [
    [1001, v2],
    [1002, before],
    [1002, v3],
    [1002, after],
    [1003, v1],
    [1004, empty],
    [1005, collection],
    [1006, info],
    [1007, base],
    [1008, notIiif],
    [1009, v2],
    [1010, v2],
    [1011, v2],
    [1012, gone],
  ]);
  const run = await ws.run();
  const paths = (server: typeof images) => server!.requests.map((r) => r.path);

  it('expands every manifest into its canvases and fails what has no image', () => {
    expect(run.json).toMatchObject({ idsDone: 8, idsFailed: 4, iiifDocuments: 6 });
    expect(ws.status().errors).toEqual({ iiif_empty: 1, iiif_collection: 1, not_image: 1, http_404: 1 });
  });

  it('numbers a gbifID files in order, a manifest canvases in its place', async () => {
    const files = ws.files().filter((f) => f.includes('/1002-'));
    expect(files.map((f) => f.slice(-7))).toEqual(['-00.jpg', '-01.jpg', '-02.jpg', '-03.jpg', '-04.jpg']);
    expect((await sharp(join(ws.out, files[0] as string)).metadata()).width).toBe(30);
    expect((await sharp(join(ws.out, files[4] as string)).metadata()).width).toBe(40);
    expect(ws.files().filter((f) => /\/10(01|09|10|11)-/.test(f))).toHaveLength(8);
    expect(ws.files().some((f) => /\/10(04|05|08|12)-/.test(f))).toBe(false);
  });

  it('asks an Image API service for 1600 px, honouring the API version, ids with queries and trailing slashes', () => {
    expect(paths(images)).toEqual(
      expect.arrayContaining([
        '/iiif/2/sheet-front/full/1600,/0/default.jpg',
        '/iiif/2/sheet-back/full/1600,/0/default.jpg',
        '/iiif/3/B!10!sheet-a.jpg/full/1600,/0/default.jpg',
        '/iipsrv.fcgi?IIIF=/sheet-c.jp2/full/1600,/0/default.jpg',
        '/iiif/1/b38081da/full/1600,/0/native.jpg',
        '/plain/label-b.jpg',
      ]),
    );
  });

  it('never fetches thumbnails, logos, sound, or a Choice other than the first', () => {
    expect(paths(images).filter((p) => /thumb|logo|\.mp3|uv\//.test(p))).toEqual([]);
  });

  it('fetches a manifest shared by four gbifIDs once', () => {
    expect(manifests!.count('/iiif/herbarium/manifest.v2.json')).toBe(1);
  });

  it('reads maxWidth from an info.json identifier and asks for that size first', () => {
    expect(paths(images).filter((p) => p.startsWith('/iiif/3/limited/'))).toEqual(['/iiif/3/limited/info.json', '/iiif/3/limited/full/1000,/0/default.jpg']);
  });

  it('follows a base URL to its info.json, and steps down the ladder when a size is refused', () => {
    expect(paths(limited)).toEqual([
      '/iiif/2/base-only',
      '/iiif/2/base-only/info.json',
      '/iiif/2/base-only/full/1600,/0/default.jpg',
      '/iiif/2/base-only/full/1200,/0/default.jpg',
    ]);
  });

  it('tries every size and then the resource itself before failing the gbifID', () => {
    expect(paths(missing)).toEqual([
      '/iiif/2/gone/full/1600,/0/default.jpg',
      '/iiif/2/gone/full/1200,/0/default.jpg',
      '/iiif/2/gone/full/800,/0/default.jpg',
      '/iiif/2/gone/full/full/0/default.jpg',
    ]);
  });

  it('exports one line per canvas with the manifest as source and the image request as final URL', () => {
    const lines = herbdl(['export', '--db', ws.db, '--format', 'jsonl'])
      .stdout.trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => l['gbifID'] === 1002);
    expect(lines.map((l) => [l['NN'], l['imageIndex'], l['iiifCanvas'], l['url']])).toEqual([
      [0, 0, null, before],
      [1, 1, 0, v3],
      [2, 1, 1, v3],
      [3, 1, 2, v3],
      [4, 2, null, after],
    ]);
    expect(lines[1]?.['finalUrl']).toBe(`${images!.origin}/iiif/3/B!10!sheet-a.jpg/full/1600,/0/default.jpg`);
    expect(lines[2]?.['path']).toBe('100/2/1002-02.jpg');
    expect(lines.every((l) => typeof l['sha256'] === 'string')).toBe(true);
  });

  it('links a stored image by its NN, not its imageIndex, when a later gbifID shares its URL', async () => {
    herbdlJson(['ingest', writeMultimedia(join(ws.out, '..', 'more.txt'), [[1013, after]]), '--db', ws.db]);
    const again = await ws.run();
    expect(again.json).toMatchObject({ idsDone: 1, shared: 1, images: 0 });
    const stored = ws.files().find((f) => f.includes('/1002-04')) as string;
    const linked = ws.files().find((f) => f.includes('/1013-00')) as string;
    expect(readFileSync(join(ws.out, linked))).toEqual(readFileSync(join(ws.out, stored)));
    expect(images!.count('/b.jpg')).toBe(1);
  });

  it('links a stored IIIF identifier part by part when a later run meets its URL again, with no request', async () => {
    const manifestRequests = manifests!.requests.length;
    const imageRequests = images!.requests.length;
    herbdlJson(['ingest', writeMultimedia(join(ws.out, '..', 'more-iiif.txt'), [[1014, v3]]), '--db', ws.db]);
    const again = await ws.run();
    expect(again.json).toMatchObject({ idsDone: 1, images: 0, iiifDocuments: 0 });
    expect(again.json.shared).toBeGreaterThan(1);
    expect(manifests!.requests.length).toBe(manifestRequests);
    expect(images!.requests.length).toBe(imageRequests);
    // The same files, in the same NN order, as under the gbifID that fetched them (1002 has a.jpg before the manifest).
    const of = (id: number) => ws.files().filter((f) => f.includes(`/${id}-`));
    const linked = of(1014);
    expect(linked.length).toBe(again.json.shared);
    linked.forEach((file, nn) => expect(readFileSync(join(ws.out, file))).toEqual(readFileSync(join(ws.out, of(1002)[nn + 1] as string))));
    const exported = herbdl(['export', '--db', ws.db, '--format', 'jsonl']).stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(exported.filter((l) => l['gbifID'] === 1014).map((l) => l['iiifCanvas'])).toEqual(linked.map((_, i) => i));
  });
});
