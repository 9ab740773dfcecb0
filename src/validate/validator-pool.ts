/**
 * Image validation on a worker thread, apart from the download concurrency:
 * a burst of TIFFs never stalls the network side, and the thread driving
 * downloads never runs sharp's per-image setup. One worker, whatever the
 * cores: libvips reports some damage only as a warning that any pipeline of
 * the process may be handed, and a decode can be trusted only when every
 * pipeline runs on one thread (decode-warnings.ts). It drives two decodes
 * more than there are cores at a time, on libuv's pool. Its own work per
 * image (setting up a pipeline, handing the body to be written, messages)
 * was about 0.9 ms a 400 x 600 sheet, profiled on the 2-core bench machine:
 * one process validates at most about 1,100 such sheets a second, whatever
 * its cores (README, Benchmarks).
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { PermanentError } from '../errors.js';
import type { InspectedJpeg, ValidatedImage, ValidateSettings } from './validate-image.js';
import type { ValidateReply, ValidateRequest, ValidateWorkerData } from './validate-worker.js';

export interface Validator {
  /** Validates the image at `path`, or `body` (which then belongs to the validator: the caller must not read it again). */
  validate(path: string, body?: Buffer): Promise<ValidatedImage>;
  /** Checks a file to be kept exactly as it is (adopt): see inspectJpeg. */
  inspect(path: string): Promise<InspectedJpeg>;
  /** Writes derivatives of the stored JPEG at `path` as `<into>.w<width>`, from one decode (see derive.ts). */
  derive(path: string, widths: readonly number[], into: string): Promise<void>;
  close(): Promise<void>;
}

/**
 * A validation worker's JavaScript makes little garbage per image (bodies and
 * pixels are outside its heap), but V8's default young generation lets it
 * grow to tens of MB before a collection: at 2 MB, adopt of 20,000 sheets
 * peaked 25 to 30 MB lower at the same speed, and a run of 1600 px sheets
 * ran as fast. The old generation keeps V8's default, so no burst of
 * requests can run the worker out of heap.
 */
const WORKER_LIMITS = { maxYoungGenerationSizeMb: 2 };

export function createValidatorPool(settings: ValidateSettings): Validator {
  const pending = new Map<number, { resolve: (v: never) => void; reject: (e: Error) => void }>();
  let ids = 0;
  const settle = (reply: ValidateReply) => {
    const waiter = pending.get(reply.id);
    if (!waiter) return;
    pending.delete(reply.id);
    if ('ok' in reply) waiter.resolve(reply.ok as never);
    // A local file-system error stops the run (as one while publishing does) rather than failing images one by one.
    else if (reply.error.local) waiter.reject(Object.assign(new Error(reply.error.message), { code: reply.error.code }));
    else waiter.reject(new PermanentError(reply.error.message, reply.error.code));
  };
  const failAll = (err: Error) => {
    for (const waiter of pending.values()) waiter.reject(err);
    pending.clear();
  };
  // Two decodes beyond the cores: a decode's thread waits on more than its core (a 2-core machine
  // decodes 400 x 600 sheets about 1.5x faster with four at once than with two, bench/decode-ceiling.mjs).
  const workerData: ValidateWorkerData = { settings, concurrency: availableParallelism() + 2 };
  const worker = new Worker(new URL('./validate-worker.js', import.meta.url), { workerData, resourceLimits: WORKER_LIMITS });
  worker.on('message', settle);
  worker.on('error', failAll);
  const ask = <T>(request: ValidateRequest, transfer: ArrayBuffer[] = []) =>
    new Promise<T>((resolve, reject) => {
      pending.set(request.id, { resolve: resolve as (v: never) => void, reject });
      worker.postMessage(request, transfer);
    });
  return {
    inspect(path) {
      return ask<InspectedJpeg>({ id: ++ids, path, inspect: true });
    },
    async derive(path, widths, into) {
      await ask<null>({ id: ++ids, path, derive: { widths, into } });
    },
    validate(path, body) {
      // A body that owns its memory moves to the worker without a copy (the caller does not use it
      // again); a slice of a shared buffer is copied. Bodies over 512 KiB are read from their file there.
      const owned = body !== undefined && body.byteOffset === 0 && body.byteLength === body.buffer.byteLength && body.buffer instanceof ArrayBuffer;
      return ask<ValidatedImage>(body ? { id: ++ids, path, body } : { id: ++ids, path }, owned ? [body.buffer as ArrayBuffer] : []);
    },
    async close() {
      await worker.terminate();
    },
  };
}
