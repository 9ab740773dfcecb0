/**
 * The IIIF ladder against servers that say less in the manifest than they
 * enforce: a whole-image request refused steps down below the image's width,
 * and a canvas that paints a region of an image (a SpecificResource) is asked
 * for that region.
 */
import { describe, expect, it } from 'vitest';
import { herbdlJson, tempDir } from './helpers/cli.js';
import { imageServers } from './helpers/image-server.js';
import { writeMultimedia } from './helpers/multimedia.js';
import { expectConsistentTree, workspace } from './helpers/run.js';

const v2Manifest = (service: string, width: number) =>
  JSON.stringify({
    '@context': 'http://iiif.io/api/presentation/2/context.json',
    '@type': 'sc:Manifest',
    sequences: [
      {
        canvases: [
          {
            '@type': 'sc:Canvas',
            width,
            height: width * 1.5,
            images: [
              {
                motivation: 'sc:painting',
                // The resource's own URL is the same whole-image request: refused once, never sent again.
                resource: {
                  '@id': `${service}/full/full/0/default.jpg`,
                  '@type': 'dctypes:Image',
                  service: { '@context': 'http://iiif.io/api/image/2/context.json', '@id': service, profile: 'http://iiif.io/api/image/2/level1.json' },
                },
              },
            ],
          },
        ],
      },
    ],
  });

describe('herbdl run: the IIIF ladder', async () => {
  const [manifests, limited] = await imageServers(2, 44);
  // A level 1 server whose info.json (not the manifest) says maxWidth 1200; its sheets are 1600 px wide.
  limited!.imageApi({ maxWidth: 1200, width: 1600 });
  const dir = tempDir();

  it('steps down to 1200 when the whole-image request of a 1600 px canvas is refused', async () => {
    const rows: [number, string][] = [];
    for (let i = 0; i < 20; i++) rows.push([4400 + i, manifests!.route(`/m/${i}/manifest`, { kind: 'json', body: v2Manifest(`${limited!.origin}/iiif/sheet-${i}`, 1600) })]);
    const ws = workspace(dir, rows);
    const { json } = await ws.run(['--breaker-threshold', '1000']);
    expect(json).toMatchObject({ idsDone: 20, idsFailed: 0 });
    for (let i = 0; i < 20; i++) {
      expect(limited!.requests.filter((r) => r.path.startsWith(`/iiif/sheet-${i}/`)).map((r) => r.path)).toEqual([
        `/iiif/sheet-${i}/full/full/0/default.jpg`,
        `/iiif/sheet-${i}/full/1200,/0/default.jpg`,
      ]);
    }
  });

  it('asks for the region a SpecificResource paints', async () => {
    // A server that limits nothing: the one request is the region, whole.
    manifests!.imageApi();
    const service = `${manifests!.origin}/iiif/region-sheet`;
    const manifest = JSON.stringify({
      '@context': 'http://iiif.io/api/presentation/3/context.json',
      type: 'Manifest',
      items: [
        {
          type: 'Canvas',
          width: 1000,
          height: 1500,
          items: [
            {
              type: 'AnnotationPage',
              items: [
                {
                  type: 'Annotation',
                  motivation: 'painting',
                  body: {
                    type: 'SpecificResource',
                    source: { id: `${service}/full/max/0/default.jpg`, type: 'Image', service: [{ id: service, type: 'ImageService2', profile: 'level1' }] },
                    selector: { type: 'ImageApiSelector', region: '200,300,1000,1500' },
                  },
                },
              ],
            },
          ],
        },
      ],
    });
    const ws = workspace(dir, [[4500, manifests!.route('/m/region/manifest', { kind: 'json', body: manifest })]]);
    const { json } = await ws.run();
    expect(json).toMatchObject({ idsDone: 1, idsFailed: 0 });
    expect(ws.files()).toEqual(['450/0/4500-00.jpg']);
    expect(manifests!.requests.filter((r) => r.path.startsWith('/iiif/region-sheet/')).map((r) => r.path)).toEqual(['/iiif/region-sheet/200,300,1000,1500/full/0/default.jpg']);
  });

  it('a reopened gbifID whose manifest shrank leaves none of its old higher-NN files', async () => {
    const manifestOf = (canvases: number) =>
      JSON.stringify({
        type: 'Manifest',
        items: Array.from({ length: canvases }, (_, c) => ({
          type: 'Canvas',
          items: [{ type: 'AnnotationPage', items: [{ type: 'Annotation', motivation: 'painting', body: { id: manifests!.route(`/shrink/${c}.jpg`, { kind: 'image' }), type: 'Image' } }] }],
        })),
      });
    const manifest = manifests!.route('/shrink/manifest', { kind: 'json', body: manifestOf(3) });
    const ws = workspace(dir, [[4600, manifest]]);
    await ws.run();
    expect(ws.files()).toEqual(['460/0/4600-00.jpg', '460/0/4600-01.jpg', '460/0/4600-02.jpg']);
    // A newer export: the gbifID gains an image, and its manifest now has one canvas.
    manifests!.route('/shrink/manifest', { kind: 'json', body: manifestOf(1) });
    const later = writeMultimedia(`${dir}/shrink-later.txt`, [[4600, manifest], [4600, manifests!.route('/shrink/new.jpg', { kind: 'image' })]]);
    expect(herbdlJson(['ingest', later, '--db', ws.db])).toMatchObject({ reopened: 1 });
    const { json } = await ws.run();
    expect(json).toMatchObject({ idsDone: 1 });
    expect(ws.files()).toEqual(['460/0/4600-00.jpg', '460/0/4600-01.jpg']);
    expectConsistentTree(ws);
  });
});
