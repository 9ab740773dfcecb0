/**
 * A worker thread that validates images, off the thread that drives the
 * downloads. One worker of a pool runs libvips (sharp); the others
 * (`libvips: false`) take the common case that needs none, a plain JPEG
 * checked by jpeg-scan.ts, and hand back anything else (validator-pool.ts).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { fileSystemErrno, HerbdlError } from '../errors.js';
import pLimit from 'p-limit';
import { inspectJpeg, inspectWithoutLibvips, type InspectedJpeg } from './inspect-jpeg.js';
import { validateImage, validateWithoutLibvips, type LeftToLibvips, type PixelsMade, type ValidatedImage, type ValidateSettings } from './validate-image.js';
import { deriveFromFile } from './derive.js';
import { forbidLibvips } from './decode-warnings.js';

export interface ValidateRequest {
  readonly id: number;
  readonly path: string;
  readonly body?: Uint8Array;
  /** Inspect a file to keep as it is (adopt), instead of validating a body. */
  readonly inspect?: true;
  /** Write derivatives of the stored file at `path` (herbdl derive), as `<into>.w<width>`, instead of validating. */
  readonly derive?: { readonly widths: readonly number[]; readonly into: string };
  /** What a worker without libvips left of it (validate-image.ts: LeftToLibvips); unset for a new request. */
  readonly left?: LeftToLibvips;
  /** Checked by a worker without libvips, whose scan also made the derivatives' pixels: only resizing them is left. */
  readonly made?: PixelsMade;
}

type Answer = ValidatedImage | InspectedJpeg | null;

export type ValidateReply =
  | { readonly id: number; readonly ok: Answer }
  | { readonly id: number; readonly error: { readonly message: string; readonly code: string; readonly local?: boolean } }
  /** From a worker without libvips: what is left to the one with it (the body, if it came with one, handed back; the pixels, if its scan made them). */
  | { readonly id: number; readonly left: LeftToLibvips; readonly body?: Uint8Array; readonly made?: PixelsMade };

export interface ValidateWorkerData {
  readonly settings: ValidateSettings;
  /** Whether this worker runs libvips (one per process: decode-warnings.ts); the others only validate without it. */
  readonly libvips: boolean;
  /** Decodes the libvips worker runs at once, on libuv's pool (validator-pool.ts). */
  readonly concurrency: number;
}

const { settings, libvips, concurrency } = workerData as ValidateWorkerData;
if (!libvips) forbidLibvips();
const limit = pLimit(concurrency);

/**
 * A reply, with the body the request brought handed back: a body moved
 * into this thread would stay here as garbage until this isolate collects,
 * and V8 lets each isolate gather tens of MB of such memory first (measured:
 * 20 to 40 MB in each worker). Handed back, they gather in one isolate only.
 */
function reply(message: ValidateReply, body: Uint8Array | undefined, pixels?: Uint8Array): void {
  parentPort?.postMessage(message, [body, pixels].flatMap((b) => (b ? [b.buffer as ArrayBuffer] : [])));
}

function replyError(id: number, err: unknown, body: Uint8Array | undefined, pixels?: Uint8Array): void {
  const message = (err as Error).message ?? String(err);
  // A file-system error (writing the body: disk full, permissions) is this machine's problem, not the image's.
  const errno = fileSystemErrno(err);
  const code = errno ?? (err instanceof HerbdlError ? err.code : 'not_image');
  reply({ id, error: { message, code, local: errno !== undefined } }, body, pixels);
}

/** On a worker without libvips: the answer, or what is left to the one with it. */
async function withoutLibvips(request: ValidateRequest, body: Buffer | undefined): Promise<Answer | LeftToLibvips | PixelsMade> {
  if (request.inspect) return inspectWithoutLibvips(request.path, settings.check) ?? 'check';
  return validateWithoutLibvips(request.path, settings, body);
}

/** On the libvips worker: all of it (each call tries the scan before any decode, unless another worker left only the pixels). */
async function withLibvips(request: ValidateRequest, body: Buffer | undefined): Promise<Answer> {
  if (request.inspect) return inspectJpeg(request.path, settings.check);
  if (!request.derive) return validateImage(request.path, settings, body, request.left, request.made);
  await deriveFromFile(request.path, request.derive.into, request.derive.widths, settings.jpegQuality);
  return null;
}

parentPort?.on('message', (request: ValidateRequest) => {
  const body = request.body ? Buffer.from(request.body.buffer, request.body.byteOffset, request.body.byteLength) : undefined;
  // The libvips work waits its turn, cores + 2 at a time on libuv's pool; the scan is synchronous work on this thread.
  const work = (): Promise<Answer | LeftToLibvips | PixelsMade> => (libvips ? limit(() => withLibvips(request, body)) : withoutLibvips(request, body));
  work().then(
    (ok) => {
      if (ok === 'check' || ok === 'pixels') reply({ id: request.id, left: ok, body: request.body }, request.body);
      else if (ok && 'pixels' in ok) reply({ id: request.id, left: 'pixels', body: request.body, made: ok }, request.body, ok.pixels.data);
      // Pixels another worker made are done with too: handed back as the body is.
      else reply({ id: request.id, ok }, request.body, request.made?.pixels.data);
    },
    (err: unknown) => replyError(request.id, err, request.body, request.made?.pixels.data),
  );
});
