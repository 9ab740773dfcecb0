/**
 * IIIF Image API services (1.1, 2 and 3) and the requests herbdl makes of
 * them: `{service}/full/1600,/0/default.jpg`, then 1200, then 800 when a
 * server refuses a size. What the service says of itself (width, maxWidth,
 * maxArea, sizes, level 0) picks the first request, so a well-described
 * server is asked once. Image API 1.1 names its quality `native`.
 */
import { contextOf, idOf, positive, profileOf, typeOf, nodes, type Node } from './json-ld.js';

/** The widths asked for, largest first: enough for a herbarium sheet's label, small enough to be polite. */
export const SIZE_LADDER = [1600, 1200, 800] as const;

export interface ImageService {
  readonly id: string;
  readonly version: 1 | 2 | 3;
  /** Level 0 servers only serve the sizes they list (or full size). */
  readonly level0: boolean;
  readonly width?: number;
  readonly height?: number;
  readonly maxWidth?: number;
  readonly maxArea?: number;
  readonly sizes: readonly { readonly width: number; readonly height: number }[];
}

function versionOf(node: Node): 1 | 2 | 3 | undefined {
  const context = contextOf(node);
  const type = typeOf(node);
  const profile = profileOf(node);
  // The context wins over a mislabelled type (real files say ImageService2 with an image/3 context).
  if (/iiif\.io\/api\/image\/3/.test(context)) return 3;
  if (/iiif\.io\/api\/image\/2/.test(context)) return 2;
  if (/iiif\.io\/api\/image\/1|image-api\/1/.test(context)) return 1;
  if (type === 'ImageService3') return 3;
  if (type === 'ImageService2') return 2;
  if (type === 'ImageService1') return 1;
  if (/iiif\.io\/api\/image\/3/.test(profile)) return 3;
  if (/iiif\.io\/api\/image\/2/.test(profile)) return 2;
  if (/image-api\/1/.test(profile)) return 1;
  if (node['protocol'] === 'http://iiif.io/api/image') return 2;
  return undefined;
}

/** An Image API service described by `node`, or undefined for any other service (search, auth, tracking). */
export function readImageService(node: Node): ImageService | undefined {
  const id = idOf(node);
  const version = versionOf(node);
  if (!id || !version) return undefined;
  const profile = profileOf(node);
  const sizes = nodes(node['sizes'])
    .map((s) => ({ width: positive(s['width']), height: positive(s['height']) }))
    .filter((s): s is { width: number; height: number } => s.width !== undefined && s.height !== undefined);
  // maxWidth and friends live at the top in v3, inside the profile's object in v2.
  const limits = [node, ...nodes(node['profile'])];
  const pick = (key: string) => limits.map((n) => positive(n[key])).find((v) => v !== undefined);
  const width = positive(node['width']);
  const height = positive(node['height']);
  const maxWidth = pick('maxWidth');
  const maxArea = pick('maxArea');
  return {
    id,
    version,
    level0: /level0/.test(profile),
    ...(width !== undefined ? { width } : {}),
    ...(height !== undefined ? { height } : {}),
    ...(maxWidth !== undefined ? { maxWidth } : {}),
    ...(maxArea !== undefined ? { maxArea } : {}),
    sizes,
  };
}

/** The best of several services on one image: the newest API version. */
export function bestImageService(candidates: unknown): ImageService | undefined {
  const services = nodes(candidates)
    .map(readImageService)
    .filter((s): s is ImageService => s !== undefined);
  return services.sort((a, b) => b.version - a.version)[0];
}

/** A part of the image a canvas shows (an ImageApiSelector's or a fragment's `x,y,w,h`). */
export interface Region {
  /** As the Image API's region parameter says it: `x,y,w,h`, or `pct:...`. */
  readonly value: string;
  /** Its width in pixels, when known. */
  readonly width?: number;
}

function request(service: ImageService, size: string, region = 'full'): string {
  // Plain concatenation: an id may carry a query string (iipsrv.fcgi?IIIF=/x.jp2), a port or
  // percent-encoding, and the request path must follow it untouched.
  const base = service.id.replace(/\/+$/, '');
  const quality = service.version === 1 ? 'native' : 'default';
  return `${base}/${region}/${size}/0/${quality}.jpg`;
}

function fullSize(service: ImageService): string {
  return service.version === 3 ? 'max' : 'full';
}

/** The widest `w` no limit of the service forbids. */
function widthLimit(service: ImageService): number {
  let limit = Infinity;
  if (service.maxWidth) limit = Math.min(limit, service.maxWidth);
  if (service.maxArea && service.width && service.height) {
    limit = Math.min(limit, Math.floor(Math.sqrt((service.maxArea * service.width) / service.height)));
  }
  if (service.width) limit = Math.min(limit, service.width);
  return limit;
}

/**
 * The URLs to try for one image, in order; each after the one before was
 * refused. `resourceUrl` (the image's own URL in a manifest) is the last
 * resort, or the first for a level 0 server that lists no sizes. A `region`
 * asks for that part of the image only (a canvas that shows part of it).
 * No URL is listed twice, so a refused request is never sent again.
 */
export function imageRequests(service: ImageService, resourceUrl?: string, region?: Region): string[] {
  const urls: string[] = [];
  const limit = widthLimit(service);
  if (region) {
    // A region's own width stands for the image's; the service's limits still hold.
    const regionLimit = region.width === undefined ? limit : widthLimit({ ...service, width: region.width });
    if (regionLimit <= SIZE_LADDER[0]) urls.push(request(service, fullSize(service), region.value));
    for (const w of SIZE_LADDER) if (w < regionLimit) urls.push(request(service, `${w},`, region.value));
  } else if (service.level0) {
    // Only listed sizes are served: the largest up to the ladder's top, else the smallest.
    const listed = [...service.sizes].sort((a, b) => b.width - a.width);
    const fit = listed.find((s) => s.width <= SIZE_LADDER[0]) ?? listed[listed.length - 1];
    if (fit) urls.push(request(service, service.version === 3 ? `${fit.width},${fit.height}` : `${fit.width},`));
    if (resourceUrl) urls.push(resourceUrl);
    // Full size is the one request every level 0 server must answer.
    if (!fit) urls.push(request(service, fullSize(service)));
  } else if (limit <= SIZE_LADDER[0] && limit === service.width) {
    // Smaller than the ladder's top: the whole image, never upscaled. A server
    // that refuses the whole image (a maxWidth only its info.json gives) will
    // often serve a smaller width: the ladder's rungs below the image's width follow.
    urls.push(request(service, fullSize(service)));
    for (const w of SIZE_LADDER) if (w < limit) urls.push(request(service, `${w},`));
  } else {
    // The ladder below the limit, led by the limit itself when a server allows less than its top.
    const widths: number[] = SIZE_LADDER.filter((w) => w <= limit);
    if (limit < SIZE_LADDER[0] && !widths.includes(limit)) widths.unshift(limit);
    for (const w of widths) urls.push(request(service, `${w},`));
  }
  if (resourceUrl) urls.push(resourceUrl);
  return [...new Set(urls)];
}
