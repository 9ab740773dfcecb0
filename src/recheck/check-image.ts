/**
 * One stored image asked for again: what its host's answer means. A 304 to
 * the conditional request, or a body whose bytes hash to the stored sha256,
 * confirms it; a body that validates to the same stored file confirms it
 * too (a converted image is compared after conversion); other bytes are a
 * new version, validated as `run` validates, left in the temporary with its
 * derivatives; 404 and 410 say it is gone at the source. Anything else (a
 * timeout, a 5xx, a body that no longer decodes) changes nothing: it is
 * asked again at a later recheck, never counted as gone.
 *
 * The stored file is looked at first: one that is gone, or whose size is
 * not the recorded one (cut short by a copy, a disk), cannot be confirmed by
 * a 304. It is asked for whole, and the same version's bytes are left in
 * the temporary to be put back in its place (`restored`).
 */
import { rm, writeFile } from 'node:fs/promises';
import { FetchError, fileSystemErrno } from '../errors.js';
import { fetchImage, type Conditional, type FetchSettings } from '../fetch/fetch-image.js';
import type { FetchedImage, RecheckImage } from '../ledger/ledger.js';
import { derivativeTemp } from '../store/layout.js';
import { storedAsRecorded } from '../store/publisher.js';
import type { Validator } from '../validate/validator-pool.js';

export type Checked =
  | { readonly kind: 'confirmed'; readonly how: 'not_modified' | 'same_bytes'; readonly bytes: number; readonly etag?: string; readonly lastModified?: string }
  | { readonly kind: 'changed'; readonly bytes: number; readonly image: FetchedImage }
  /** The stored file was gone or of another size; the host sent the same version, now in the temporary. */
  | { readonly kind: 'restored'; readonly bytes: number; readonly etag?: string; readonly lastModified?: string }
  | { readonly kind: 'gone'; readonly httpStatus: number }
  /** No verdict now: asked again at a later recheck. `error` is the failure, for the host's state. */
  | { readonly kind: 'later'; readonly code: string; readonly error?: FetchError; readonly bytes: number };

export interface CheckContext {
  readonly fetch: FetchSettings;
  readonly validator: Validator;
  /** Derivative widths the gbifID has: a new version's are made with it. */
  readonly widths: readonly number[];
  readonly signal?: AbortSignal;
}

const GONE = new Set([404, 410]);

/** `stored`: the image's file in the tree. */
export async function checkImage(image: RecheckImage, temp: string, stored: string, context: CheckContext): Promise<Checked> {
  const intact = await storedAsRecorded(stored, image.bytes);
  const conditional: Conditional = intact ? { ...(image.etag ? { etag: image.etag } : {}), ...(image.lastModified ? { lastModified: image.lastModified } : {}) } : {};
  let fetched;
  try {
    fetched = await fetchImage(image.url, temp, context.fetch, context.signal, conditional);
  } catch (err) {
    if (!(err instanceof FetchError)) throw err;
    if (err.httpStatus !== undefined && GONE.has(err.httpStatus)) return { kind: 'gone', httpStatus: err.httpStatus };
    return { kind: 'later', code: err.code, error: err, bytes: 0 };
  }
  const validators = { ...(fetched.etag ? { etag: fetched.etag } : {}), ...(fetched.lastModified ? { lastModified: fetched.lastModified } : {}) };
  if (fetched.notModified) return { kind: 'confirmed', how: 'not_modified', bytes: 0, ...validators };
  const { body, json: _json, notModified: _n, ...received } = fetched;
  if (received.sha256 === image.sha256) {
    if (!intact) {
      // A body kept in memory is in no file yet.
      if (body) await writeFile(temp, body);
      return { kind: 'restored', bytes: received.bytes, ...validators };
    }
    await rm(temp, { force: true });
    return { kind: 'confirmed', how: 'same_bytes', bytes: received.bytes, ...validators };
  }
  let validated;
  try {
    validated = await context.validator.validate(temp, body);
  } catch (err) {
    await rm(temp, { force: true });
    if (fileSystemErrno(err) !== undefined) throw err;
    return { kind: 'later', code: (err as { code?: string }).code ?? 'not_image', bytes: received.bytes };
  }
  const kept = validated.stored ?? { bytes: received.bytes, sha256: received.sha256 };
  if (kept.sha256 === image.sha256) {
    // Converted as before: the temporary holds the stored file's bytes.
    if (!intact) return { kind: 'restored', bytes: received.bytes, ...validators };
    await rm(temp, { force: true });
    return { kind: 'confirmed', how: 'same_bytes', bytes: received.bytes, ...validators };
  }
  if (context.widths.length > 0) await context.validator.derive(temp, context.widths, temp);
  return {
    kind: 'changed',
    bytes: received.bytes,
    image: {
      ...received,
      ...kept,
      imageId: image.imageId,
      fileIndex: image.fileIndex,
      width: validated.width,
      height: validated.height,
      receivedFormat: validated.receivedFormat,
    },
  };
}

/** The temporaries a checked image may have left (its own and its derivatives'). */
export function tempsOf(temp: string, widths: readonly number[]): string[] {
  return [temp, ...widths.map((w) => derivativeTemp(temp, w))];
}
