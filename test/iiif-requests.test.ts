/** The Image API requests chosen from what a service says of itself (pure functions: no server needed). */
import { describe, expect, it } from 'vitest';
import { readIiif } from '../src/iiif/document.js';
import { imageRequests, readImageService } from '../src/iiif/image-service.js';

const S = 'https://img.example.org/iiif/sheet';
const service = (extra: Record<string, unknown>) => readImageService({ '@context': 'http://iiif.io/api/image/2/context.json', '@id': S, ...extra })!;

describe('Image API requests', () => {
  it('asks 1600, 1200, 800 px of a big image, never more than maxWidth or maxArea allow', () => {
    expect(imageRequests(service({ width: 5000, height: 7000 }))).toEqual([`${S}/full/1600,/0/default.jpg`, `${S}/full/1200,/0/default.jpg`, `${S}/full/800,/0/default.jpg`]);
    expect(imageRequests(service({ width: 5000, height: 7000, profile: ['http://iiif.io/api/image/2/level2.json', { maxWidth: 1000 }] }))).toEqual([
      `${S}/full/1000,/0/default.jpg`,
      `${S}/full/800,/0/default.jpg`,
    ]);
    // 1000 x 1000 px at most: on a 2:1 portrait, width 707.
    expect(imageRequests(service({ width: 2000, height: 4000, maxArea: 1_000_000 }))).toEqual([`${S}/full/707,/0/default.jpg`]);
  });

  it('takes a small image whole, as full (v2) or max (v3), never upscaled; refused, it steps down the ladder below its width', () => {
    expect(imageRequests(service({ width: 900, height: 1200 }))).toEqual([`${S}/full/full/0/default.jpg`, `${S}/full/800,/0/default.jpg`]);
    const v3 = readImageService({ id: S, type: 'ImageService3', profile: 'level1', width: 900, height: 1200 })!;
    expect(imageRequests(v3)).toEqual([`${S}/full/max/0/default.jpg`, `${S}/full/800,/0/default.jpg`]);
    // A 1600 px canvas whose server allows less (a maxWidth only its info.json says): never the same request twice.
    expect(imageRequests(service({ width: 1600, height: 2400 }), `${S}/full/full/0/default.jpg`)).toEqual([
      `${S}/full/full/0/default.jpg`,
      `${S}/full/1200,/0/default.jpg`,
      `${S}/full/800,/0/default.jpg`,
    ]);
  });

  it('asks for the region a SpecificResource selects, or takes its source image whole when it has no service', () => {
    const manifest = (body: unknown) =>
      JSON.stringify({ type: 'Manifest', items: [{ type: 'Canvas', width: 3000, height: 4000, items: [{ type: 'AnnotationPage', items: [{ type: 'Annotation', motivation: 'painting', body }] }] }] });
    const withService = {
      type: 'SpecificResource',
      source: { id: `${S}/full/max/0/default.jpg`, type: 'Image', service: [{ id: S, type: 'ImageService3', profile: 'level1', width: 6000, height: 8000 }] },
      selector: { type: 'ImageApiSelector', region: '1000,2000,1200,1500' },
    };
    expect(readIiif(manifest(withService), 'https://x.org/m').images[0]!.requests).toEqual([
      `${S}/1000,2000,1200,1500/max/0/default.jpg`,
      `${S}/1000,2000,1200,1500/800,/0/default.jpg`,
      `${S}/full/max/0/default.jpg`,
    ]);
    const fragment = { type: 'SpecificResource', source: withService.source, selector: { type: 'FragmentSelector', value: 'xywh=0,0,3000,4000' } };
    expect(readIiif(manifest(fragment), 'https://x.org/m').images[0]!.requests[0]).toBe(`${S}/0,0,3000,4000/1600,/0/default.jpg`);
    const plain = { type: 'SpecificResource', source: { id: 'https://x.org/sheet.jpg', type: 'Image', format: 'image/jpeg' }, selector: { type: 'ImageApiSelector', region: '0,0,10,10' } };
    expect(readIiif(manifest(plain), 'https://x.org/m').images[0]!.requests).toEqual(['https://x.org/sheet.jpg']);
  });

  it('asks a level 0 server only for a size it lists (w,h in v3), then the resource, then full size', () => {
    const sizes = [{ width: 3000, height: 4000 }, { width: 1500, height: 2000 }, { width: 750, height: 1000 }];
    const v3 = readImageService({ id: S, type: 'ImageService3', profile: 'level0', width: 3000, height: 4000, sizes })!;
    expect(imageRequests(v3, 'https://img.example.org/sheet.jpg')).toEqual([`${S}/full/1500,2000/0/default.jpg`, 'https://img.example.org/sheet.jpg']);
    const bare = service({ profile: 'http://iiif.io/api/image/2/level0.json' });
    expect(imageRequests(bare)).toEqual([`${S}/full/full/0/default.jpg`]);
  });

  it('says native.jpg to Image API 1.1 and reads its context, its profile or its type alike', () => {
    const v1 = readImageService({ '@id': `${S}/`, profile: 'http://library.stanford.edu/iiif/image-api/1.1/compliance.html#level2' })!;
    expect(imageRequests(v1)[0]).toBe(`${S}/full/1600,/0/native.jpg`);
    expect(readImageService({ '@id': S, '@type': 'ImageService2' })?.version).toBe(2);
    expect(readImageService({ id: S, type: 'SearchService1' })).toBeUndefined();
    expect(readImageService({ id: S, type: 'AuthCookieService1', profile: 'http://iiif.io/api/auth/1/login' })).toBeUndefined();
  });
});

describe('reading a JSON body', () => {
  it('refuses JSON that is not IIIF, a collection, and a manifest without an image', () => {
    expect(() => readIiif('{"ok":true}', 'https://x.org/a')).toThrow(expect.objectContaining({ code: 'not_image' }));
    expect(() => readIiif('{"type":"Collection","items":[]}', 'https://x.org/a')).toThrow(expect.objectContaining({ code: 'iiif_collection' }));
    expect(() => readIiif('{"@type":"sc:Manifest","sequences":[{"canvases":[]}]}', 'https://x.org/a')).toThrow(expect.objectContaining({ code: 'iiif_empty' }));
    expect(() => readIiif('{"@type":"sc:Manifest", ', 'https://x.org/a')).toThrow(expect.objectContaining({ code: 'not_image' }));
  });

  it('takes an info.json without an id to be the service at its own URL', () => {
    const doc = readIiif('\uFEFF{"@context":"http://iiif.io/api/image/2/context.json","protocol":"http://iiif.io/api/image","width":500,"height":400}', `${S}/info.json`);
    expect(doc).toEqual({ kind: 'image-service', images: [{ requests: [`${S}/full/full/0/default.jpg`] }] });
  });
});
