/**
 * What a JSON body is, by its content (never by its URL or the row's type
 * and format, which real rows leave empty or get wrong): a Presentation
 * manifest (v2 `sc:Manifest`, v3 `Manifest`, with or without `@context`), an
 * Image API service's info.json, or neither. A manifest becomes one image per
 * canvas, in canvas order; thumbnails, logos and non-image services are never
 * taken for specimen images.
 */
import { PermanentError } from '../errors.js';
import { bestImageService, imageRequests, readImageService, type ImageService, type Region } from './image-service.js';
import { contextOf, idOf, isNode, nodes, positive, typeOf, type Node } from './json-ld.js';

/** One image a IIIF document describes: the URLs to try for it, in order. */
export interface IiifImage {
  readonly requests: readonly string[];
}

export interface IiifDocument {
  readonly kind: 'manifest' | 'image-service';
  readonly images: readonly IiifImage[];
}

function httpUrl(url: string | undefined): string | undefined {
  if (!url) return undefined;
  try {
    const parsed = new URL(url);
    return parsed.protocol === 'http:' || parsed.protocol === 'https:' ? parsed.href : undefined;
  } catch {
    return undefined;
  }
}

function isImageResource(resource: Node): boolean {
  const type = typeOf(resource).toLowerCase();
  const format = typeof resource['format'] === 'string' ? resource['format'] : '';
  if (type === 'sound' || type === 'video' || type === 'text' || type === 'dctypes:sound' || type === 'dctypes:movingimage') return false;
  return type === 'image' || type === 'dctypes:image' || format.startsWith('image/') || bestImageService(resource['service']) !== undefined;
}

/** A Choice (v2 oa:Choice, v3 Choice) stands for its default, else its first item. */
function chosen(resource: Node): Node | undefined {
  const type = typeOf(resource);
  if (type === 'oa:Choice') return nodes(resource['default'])[0] ?? nodes(resource['item'])[0];
  if (type === 'Choice') return nodes(resource['items'])[0];
  return resource;
}

/** The region an ImageApiSelector (`region`) or a media fragment (`xywh=`) picks, if any. */
function regionOf(specific: Node): Region | undefined {
  for (const selector of nodes(specific['selector'])) {
    const type = typeOf(selector);
    let value: string | undefined;
    if (/ImageApiSelector$/.test(type) && typeof selector['region'] === 'string') value = selector['region'].trim();
    else if (/FragmentSelector$/.test(type) && typeof selector['value'] === 'string') value = /xywh=(?:pixel:)?([\d.,]+)/.exec(selector['value'])?.[1];
    if (!value || value === 'full') continue;
    const width = /^\d+,\d+,(\d+),\d+$/.exec(value)?.[1];
    return { value, ...(width !== undefined ? { width: Number(width) } : {}) };
  }
  return undefined;
}

/**
 * A SpecificResource (v3, or v2's oa:SpecificResource) paints part of an
 * image: its source (v2: `full`) is the image, its selector the part.
 */
function specific(resource: Node): { image: Node; region?: Region } | undefined {
  if (!/SpecificResource$/.test(typeOf(resource))) return { image: resource };
  const source = resource['source'] ?? resource['full'];
  const image = typeof source === 'string' ? { id: source, type: 'Image' } : nodes(source)[0];
  if (!image) return undefined;
  const region = regionOf(resource);
  return { image, ...(region ? { region } : {}) };
}

function imageOf(resource: Node | undefined, canvas: Node): IiifImage | undefined {
  const found = resource && chosen(resource);
  const target = found && specific(found);
  const picked = target?.image;
  if (!picked || !isImageResource(picked)) return undefined;
  const resourceUrl = httpUrl(idOf(picked));
  let service: ImageService | undefined = bestImageService(picked['service']);
  if (service && !httpUrl(service.id)) service = undefined;
  if (service && service.width === undefined && !target.region) {
    // The canvas is the full image's size; a body's own width may be a small derivative.
    const width = positive(canvas['width']);
    const height = positive(canvas['height']);
    if (width !== undefined && height !== undefined) service = { ...service, width, height };
  }
  // Without a service, a region cannot be asked for: the source image is taken whole.
  const requests = service ? imageRequests(service, resourceUrl, target.region) : resourceUrl ? [resourceUrl] : [];
  const valid = requests.map(httpUrl).filter((u): u is string => u !== undefined);
  return valid.length > 0 ? { requests: valid } : undefined;
}

function v2Canvases(manifest: Node): IiifImage[] {
  // The first sequence is the manifest's own order; others are alternatives.
  const sequence = nodes(manifest['sequences'])[0];
  if (!sequence) return [];
  return nodes(sequence['canvases']).flatMap((canvas) => {
    const painting = nodes(canvas['images']).find((a) => !a['motivation'] || String(a['motivation']).includes('painting'));
    const image = imageOf(painting && nodes(painting['resource'])[0], canvas);
    return image ? [image] : [];
  });
}

function v3Canvases(manifest: Node): IiifImage[] {
  return nodes(manifest['items'])
    .filter((canvas) => typeOf(canvas) === 'Canvas' || typeOf(canvas) === '')
    .flatMap((canvas) => {
      for (const page of nodes(canvas['items'])) {
        for (const annotation of nodes(page['items'])) {
          const motivation = annotation['motivation'];
          if (motivation !== undefined && !String(motivation).includes('painting')) continue;
          for (const body of nodes(annotation['body'])) {
            const image = imageOf(body, canvas);
            if (image) return [image];
          }
        }
      }
      return [];
    });
}

function isManifest(doc: Node): boolean {
  const type = typeOf(doc);
  if (type === 'sc:Manifest' || type === 'Manifest') return true;
  return type === '' && /iiif\.io\/api\/presentation/.test(contextOf(doc)) && (doc['sequences'] !== undefined || doc['items'] !== undefined);
}

/**
 * Reads a JSON body fetched from `sourceUrl`. Throws a PermanentError:
 * not_image for JSON that is no IIIF document, iiif_empty for a manifest
 * without a usable canvas, iiif_collection for a collection of manifests.
 */
export function readIiif(text: string, sourceUrl: string): IiifDocument {
  let doc: unknown;
  try {
    doc = JSON.parse(text.replace(/^\uFEFF/, ''));
  } catch {
    throw new PermanentError(`body from ${sourceUrl} starts like JSON but does not parse`, 'not_image');
  }
  if (!isNode(doc)) throw new PermanentError(`JSON from ${sourceUrl} is not a IIIF document`, 'not_image');
  const type = typeOf(doc);
  if (type === 'sc:Collection' || type === 'Collection') {
    throw new PermanentError(`${sourceUrl} is a IIIF collection, not a manifest of images`, 'iiif_collection');
  }
  if (isManifest(doc)) {
    const images = doc['sequences'] !== undefined ? v2Canvases(doc) : v3Canvases(doc);
    if (images.length === 0) throw new PermanentError(`IIIF manifest ${sourceUrl} has no canvas with a usable image`, 'iiif_empty');
    return { kind: 'manifest', images };
  }
  // An info.json; its id may be missing, and is then the URL it came from.
  const withId = idOf(doc) ? doc : { ...doc, '@id': sourceUrl.replace(/\/info\.json(\?.*)?$/, '') };
  const service = readImageService(withId);
  if (service && httpUrl(service.id)) return { kind: 'image-service', images: [{ requests: imageRequests(service) }] };
  throw new PermanentError(`JSON from ${sourceUrl} is neither a IIIF manifest nor an image service`, 'not_image');
}
