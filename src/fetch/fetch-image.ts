/**
 * Fetches one image URL: a small body is kept in memory (validation writes
 * it once it is known to be an image), a large one streams into a temporary
 * file. Redirects followed by hand (at
 * most five, loops caught, each hop's address checked), gzip/deflate/br
 * decoded, --max-bytes enforced while streaming, a body shorter than its
 * Content-Length caught, a deadline over the whole request. Throws a
 * FetchError from errors.ts; never leaves a half-written file it claims.
 */
import { createHash } from 'node:crypto';
import { open, rm, type FileHandle } from 'node:fs/promises';
import { isIP } from 'node:net';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createBrotliDecompress, createGunzip, createInflate } from 'node:zlib';
import type { Dispatcher } from 'undici';
import type { ImageOutcome } from '../ledger/ledger.js';
import { namingPath, PermanentError, RetryableError } from '../errors.js';
import { blockedAddressError, isBlockedAddress } from './address-guard.js';
import { bodyChunks } from './body-chunks.js';
import { classifyError, errorForStatus } from './classify.js';
import { looksLikeImage, looksLikeJson } from './sniff.js';
import { writeAll } from '../store/durable.js';

export const MAX_REDIRECTS = 5;
const SNIFF_BYTES = 16;

export interface FetchSettings {
  readonly agent: Dispatcher;
  readonly userAgent: string;
  readonly deadlineMs: number;
  readonly maxBytes: number;
  readonly allowPrivateNetwork: boolean;
}

/** What the ledger records of a fetched image (bytes and sha256 are of the stored file). */
export type FetchResult = ImageOutcome;

/** A fetch's result with, for a small body, the body itself. */
export interface FetchedBody extends FetchResult {
  /**
   * The whole body, when it was small enough to keep in memory; it is then
   * NOT written to the temporary path (validation writes it there). Without
   * it, the body is in the temporary file.
   */
  readonly body?: Buffer;
  /** The body is a JSON object (a IIIF manifest or info.json, perhaps), not an image. */
  readonly json: boolean;
  /** A conditional request (recheck) answered 304: the stored image is current; no body. */
  readonly notModified?: true;
}

/** A recheck's conditional request: If-None-Match with the stored ETag, else If-Modified-Since. */
export interface Conditional {
  readonly etag?: string;
  readonly lastModified?: string;
}

/** The validators a response gave (an ETag, a Last-Modified date), to be kept with the image. */
function validators(headers: Record<string, string | string[] | undefined>): { etag?: string; lastModified?: string } {
  const etag = header(headers, 'etag');
  const lastModified = header(headers, 'last-modified');
  return { ...(etag ? { etag } : {}), ...(lastModified ? { lastModified } : {}) };
}

function conditionalHeaders(conditional: Conditional | undefined): Record<string, string> {
  if (conditional?.etag) return { 'if-none-match': conditional.etag };
  if (conditional?.lastModified) return { 'if-modified-since': conditional.lastModified };
  return {};
}

/** Bodies up to this size are kept in memory, not written by the fetch (at most this much per request in flight). */
const KEEP_BODY_BYTES = 512 * 1024;

function decoder(encoding: string | undefined): Transform | undefined {
  switch ((encoding ?? '').trim().toLowerCase()) {
    case 'gzip':
    case 'x-gzip':
      return createGunzip();
    case 'deflate':
      return createInflate();
    case 'br':
      return createBrotliDecompress();
    default:
      return undefined;
  }
}

function header(headers: Record<string, string | string[] | undefined>, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function checkTarget(url: URL, allowPrivate: boolean): void {
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new PermanentError(`not an http(s) URL: ${url.href}`, 'bad_url');
  const host = url.hostname.replace(/^\[|\]$/g, '');
  // IP literals never reach the DNS lookup guard, so check them here.
  if (!allowPrivate && isIP(host) && isBlockedAddress(host)) throw blockedAddressError(host, host);
}

/**
 * Errors this machine's file system raised while a body was stored (a full
 * disk): never the host's or the image's, so never classified as a failed
 * fetch; they stop the run.
 */
const localFailures = new WeakSet<object>();

/**
 * Where a body goes: into memory while it is small, into the temporary file
 * from the moment it is not. Most images are small, and writing one in a
 * single call later costs the download thread no file operations at all.
 */
class BodyStore {
  private chunks: Buffer[] = [];
  private held = 0;
  private file: FileHandle | undefined;

  constructor(private readonly path: string) {}

  async add(chunk: Buffer): Promise<void> {
    try {
      if (this.file) {
        await writeAll(this.file.fd, [chunk]);
      } else if (this.held + chunk.length <= KEEP_BODY_BYTES) {
        this.chunks.push(chunk);
        this.held += chunk.length;
      } else {
        this.file = await open(this.path, 'w');
        await writeAll(this.file.fd, [...this.chunks, chunk]);
        this.chunks = [];
      }
    } catch (err) {
      const named = namingPath(err, this.path);
      if (typeof named === 'object' && named !== null) localFailures.add(named);
      throw named;
    }
  }

  /** The body, if it stayed in memory (else it is in the file, now closed). */
  async close(): Promise<Buffer | undefined> {
    if (!this.file) return Buffer.concat(this.chunks, this.held);
    await this.file.close();
    return undefined;
  }

  async abandon(): Promise<void> {
    await this.file?.close().catch(() => undefined);
  }
}

/**
 * Takes in the body (into memory, or into `path` when large): hashing,
 * counting, enforcing limits, sniffing the first bytes. One loop over the
 * body's chunks, with no stream stages between the socket and the store (a
 * 1600 px sheet comes in about fourteen chunks); a decoder is piped in only
 * for a gzip, deflate or br body.
 */
async function saveBody(body: Readable, headers: Record<string, string | string[] | undefined>, path: string, maxBytes: number) {
  const hash = createHash('sha256');
  let raw = 0;
  let bytes = 0;
  let head: Buffer | undefined;
  let json = false;
  const expected = header(headers, 'content-length');
  const expectedBytes = expected !== undefined && /^\d+$/.test(expected) ? Number(expected) : undefined;
  const decode = decoder(header(headers, 'content-encoding'));
  if (expectedBytes !== undefined && decode === undefined && expectedBytes > maxBytes) {
    body.on('error', () => {}); // the abort below is ours; nothing to report
    body.destroy();
    throw new PermanentError(`Content-Length ${expectedBytes} is over --max-bytes ${maxBytes}`, 'too_large');
  }
  let source: Readable = body;
  let piping: Promise<void> | undefined;
  if (decode) {
    const counter = new Transform({
      transform(chunk: Buffer, _e, done) {
        raw += chunk.length;
        done(null, chunk);
      },
    });
    piping = pipeline(body, counter, decode);
    piping.catch(() => {}); // its failure reaches the loop through the decoder
    source = decode;
  }
  // The first bytes, held until there are enough to tell an image from an HTML page.
  const sniffed: Buffer[] = [];
  const judge = (): void => {
    // The first chunk itself when it holds enough (it nearly always does): copying it cost a run a copy of every small body.
    head = sniffed.length === 1 ? (sniffed[0] as Buffer) : Buffer.concat(sniffed);
    const image = looksLikeImage(head);
    json = !image && looksLikeJson(head);
    if (!image && !json) throw new PermanentError(`body is not an image (starts ${JSON.stringify(head.subarray(0, 16).toString('latin1'))})`, 'not_image');
  };
  const store = new BodyStore(path);
  try {
    for await (const chunk of bodyChunks(source)) {
      if (!decode) raw += chunk.length;
      bytes += chunk.length;
      if (bytes > maxBytes) throw new PermanentError(`body is over --max-bytes ${maxBytes}`, 'too_large');
      hash.update(chunk);
      if (!head) {
        sniffed.push(chunk);
        if (bytes >= SNIFF_BYTES) judge();
      }
      await store.add(chunk);
    }
    await piping;
    if (!head && bytes > 0) judge();
  } catch (err) {
    body.destroy();
    await store.abandon();
    if (localFailures.has(err as object)) throw err;
    // A connection that ends before Content-Length is a short body, however the socket reported it.
    if (!(err instanceof PermanentError) && expectedBytes !== undefined && raw < expectedBytes && !(err as Error).name?.includes('Abort')) {
      throw new RetryableError(`body ended at ${raw} of ${expectedBytes} bytes`, 'truncated', undefined, { cause: err });
    }
    throw err;
  }
  const kept = await store.close();
  if (expectedBytes !== undefined && raw < expectedBytes) throw new RetryableError(`body ended at ${raw} of ${expectedBytes} bytes`, 'truncated');
  if (bytes === 0) throw new PermanentError('empty body', 'not_image');
  return { bytes, sha256: hash.digest('hex'), json, ...(kept ? { body: kept } : {}) };
}

export async function fetchImage(url: string, path: string, settings: FetchSettings, signal?: AbortSignal, conditional?: Conditional): Promise<FetchedBody> {
  // One controller per request, its timer cleared when the request ends:
  // AbortSignal.timeout would keep every request's timer and signal alive for
  // the whole --deadline, which at thousands of requests a second is a leak.
  const controller = new AbortController();
  let deadlinePassed = false;
  const timer = setTimeout(() => {
    deadlinePassed = true;
    controller.abort();
  }, settings.deadlineMs);
  const forward = () => controller.abort();
  signal?.addEventListener('abort', forward, { once: true });
  if (signal?.aborted) controller.abort();
  const abort = controller.signal;
  const visited = new Set<string>();
  let current = new URL(url);
  try {
    for (let hop = 0; ; hop++) {
      checkTarget(current, settings.allowPrivateNetwork);
      visited.add(current.href);
      const res = await settings.agent.request({
        origin: current.origin,
        path: current.pathname + current.search,
        method: 'GET',
        headers: { 'user-agent': settings.userAgent, accept: 'image/*,*/*;q=0.8', 'accept-encoding': 'gzip, deflate, br', ...conditionalHeaders(conditional) },
        signal: abort,
      });
      const headers = res.headers as Record<string, string | string[] | undefined>;
      if (res.statusCode >= 300 && res.statusCode < 400 && header(headers, 'location')) {
        await res.body.dump();
        const next = new URL(header(headers, 'location') as string, current);
        if (visited.has(next.href)) throw new PermanentError(`redirect loop at ${next.href}`, 'redirect_loop');
        if (hop + 1 > MAX_REDIRECTS) throw new PermanentError(`more than ${MAX_REDIRECTS} redirects`, 'too_many_redirects');
        current = next;
        continue;
      }
      if (res.statusCode === 304 && conditional) {
        await res.body.dump();
        return { httpStatus: 304, finalUrl: current.href, contentType: '', bytes: 0, sha256: '', json: false, notModified: true, ...validators(headers) };
      }
      if (res.statusCode < 200 || res.statusCode >= 300) {
        await res.body.dump();
        throw errorForStatus(res.statusCode, headers['retry-after']);
      }
      const saved = await saveBody(res.body, headers, path, settings.maxBytes);
      return { httpStatus: res.statusCode, finalUrl: current.href, contentType: header(headers, 'content-type') ?? '', ...validators(headers), ...saved };
    }
  } catch (err) {
    await rm(path, { force: true });
    if (localFailures.has(err as object)) throw err;
    if (deadlinePassed && !(signal?.aborted ?? false)) throw new RetryableError(`no complete response within the --deadline`, 'deadline', undefined, { cause: err });
    throw classifyError(err);
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener('abort', forward);
  }
}
