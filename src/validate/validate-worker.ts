/**
 * A worker thread that validates images, so sharp's per-image work on the
 * calling thread (setting up each libvips pipeline) stays off the thread
 * that drives the downloads.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { fileSystemErrno, HerbdlError } from '../errors.js';
import pLimit from 'p-limit';
import { inspectJpeg, validateImage, type InspectedJpeg, type ValidatedImage, type ValidateSettings } from './validate-image.js';
import { deriveFromFile } from './derive.js';

export interface ValidateRequest {
  readonly id: number;
  readonly path: string;
  readonly body?: Uint8Array;
  /** Inspect a file to keep as it is (adopt), instead of validating a body. */
  readonly inspect?: true;
  /** Write derivatives of the stored file at `path` (herbdl derive), as `<into>.w<width>`, instead of validating. */
  readonly derive?: { readonly widths: readonly number[]; readonly into: string };
}

export type ValidateReply =
  | { readonly id: number; readonly ok: ValidatedImage | InspectedJpeg | null }
  | { readonly id: number; readonly error: { readonly message: string; readonly code: string; readonly local?: boolean } };

export interface ValidateWorkerData {
  readonly settings: ValidateSettings;
  /** Decodes it runs at once: two more than the cores, the one worker drives them all (validator-pool.ts). */
  readonly concurrency: number;
}

// Bounded here too: decodes run on libuv's pool, cores + 2 at a time.
const { settings, concurrency } = workerData as ValidateWorkerData;
const limit = pLimit(concurrency);

parentPort?.on('message', (request: ValidateRequest) => {
  const body = request.body ? Buffer.from(request.body.buffer, request.body.byteOffset, request.body.byteLength) : undefined;
  const work = async (): Promise<ValidatedImage | InspectedJpeg | null> => {
    if (request.inspect) return inspectJpeg(request.path, settings.check);
    if (!request.derive) return validateImage(request.path, settings, body);
    await deriveFromFile(request.path, request.derive.into, request.derive.widths, settings.jpegQuality);
    return null;
  };
  limit(work).then(
    (ok) => parentPort?.postMessage({ id: request.id, ok } satisfies ValidateReply),
    (err: unknown) => {
      const message = (err as Error).message ?? String(err);
      // A file-system error (writing the body: disk full, permissions) is this machine's problem, not the image's.
      const errno = fileSystemErrno(err);
      const code = errno ?? (err instanceof HerbdlError ? err.code : 'not_image');
      parentPort?.postMessage({ id: request.id, error: { message, code, local: errno !== undefined } } satisfies ValidateReply);
    },
  );
});
