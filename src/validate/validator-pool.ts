/**
 * Image validation on worker threads, apart from the download concurrency:
 * a burst of TIFFs never stalls the network side, and the thread driving
 * downloads never runs a check.
 *
 * One worker per core, up to MAX_WORKERS. The first runs libvips: libvips
 * reports some damage only as a warning that any pipeline of the process may
 * be handed, and a decode can be trusted only when every pipeline runs on
 * one thread (decode-warnings.ts); it drives two decodes more than there are
 * cores at a time, on libuv's pool. Every worker takes the common case, a
 * plain JPEG checked by reading its scans in JS (jpeg-scan.ts), a run's body
 * or a file adopt inspects: that needs no libvips. A worker without libvips
 * hands anything else back, and it goes to the first (with the sheet's 1/8
 * image when only derivatives' resizing is left: jpeg-dc.ts). A request
 * goes to the worker with the fewest in hand.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { PermanentError } from '../errors.js';
import type { InspectedJpeg } from './inspect-jpeg.js';
import type { ValidatedImage, ValidateSettings } from './validate-image.js';
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

/**
 * Workers at most, whatever the cores: one reads the scans of about 1,400
 * 400 x 600 sheets or 90 1600 x 2400 ones a second (bench:damage), so four
 * keep up with more than a gigabit link brings, and each costs its memory.
 */
const MAX_WORKERS = 4;

interface Waiter {
  readonly resolve: (v: never) => void;
  readonly reject: (e: Error) => void;
  /** The request without its body, to hand to the libvips worker when another cannot answer it. */
  readonly request: ValidateRequest;
  worker: Worker;
}

export function createValidatorPool(settings: ValidateSettings): Validator {
  /** Requests not yet answered, each with the worker that has it now. */
  const pending = new Map<number, Waiter>();
  const inHand = new Map<Worker, number>();
  let ids = 0;
  const failAll = (err: Error) => {
    for (const waiter of pending.values()) waiter.reject(err);
    pending.clear();
  };
  const start = (libvips: boolean): Worker => {
    // Two decodes beyond the cores: a decode's thread waits on more than its core (a 2-core machine
    // decodes 400 x 600 sheets about 1.5x faster with four at once than with two, bench/decode-ceiling.mjs).
    const workerData: ValidateWorkerData = { settings, libvips, concurrency: availableParallelism() + 2 };
    const worker = new Worker(new URL('./validate-worker.js', import.meta.url), { workerData, resourceLimits: WORKER_LIMITS });
    worker.on('message', settle);
    worker.on('error', failAll);
    inHand.set(worker, 0);
    return worker;
  };
  const send = (waiter: Waiter, worker: Worker, request: ValidateRequest, transfer: ArrayBuffer[]) => {
    waiter.worker = worker;
    inHand.set(worker, (inHand.get(worker) as number) + 1);
    worker.postMessage(request, transfer);
  };
  function settle(reply: ValidateReply): void {
    const waiter = pending.get(reply.id);
    if (!waiter) return;
    inHand.set(waiter.worker, (inHand.get(waiter.worker) as number) - 1);
    if ('left' in reply) {
      const { body, made } = reply;
      const transfer = [body, made?.pixels.data].flatMap((b) => (b ? [b.buffer as ArrayBuffer] : []));
      send(waiter, libvipsWorker, { ...waiter.request, left: reply.left, ...(body ? { body } : {}), ...(made ? { made } : {}) }, transfer);
      return;
    }
    pending.delete(reply.id);
    if ('ok' in reply) waiter.resolve(reply.ok as never);
    // A local file-system error stops the run (as one while publishing does) rather than failing images one by one.
    else if (reply.error.local) waiter.reject(Object.assign(new Error(reply.error.message), { code: reply.error.code }));
    else waiter.reject(new PermanentError(reply.error.message, reply.error.code));
  }
  const libvipsWorker = start(true);
  const workers = [libvipsWorker, ...Array.from({ length: Math.min(availableParallelism(), MAX_WORKERS) - 1 }, () => start(false))];
  const leastInHand = () => workers.reduce((best, w) => ((inHand.get(w) as number) < (inHand.get(best) as number) ? w : best));
  const ask = <T>(worker: Worker, request: ValidateRequest, transfer: ArrayBuffer[] = []) =>
    new Promise<T>((resolve, reject) => {
      const { body: _body, ...withoutBody } = request;
      const waiter: Waiter = { resolve: resolve as (v: never) => void, reject, worker, request: withoutBody };
      pending.set(request.id, waiter);
      send(waiter, worker, request, transfer);
    });
  return {
    inspect(path) {
      return ask<InspectedJpeg>(leastInHand(), { id: ++ids, path, inspect: true });
    },
    async derive(path, widths, into) {
      await ask<null>(libvipsWorker, { id: ++ids, path, derive: { widths, into } });
    },
    validate(path, body) {
      // A body that owns its memory moves to the worker without a copy (the caller does not use it
      // again); a slice of a shared buffer is copied. Bodies over 512 KiB are read from their file there.
      const owned = body !== undefined && body.byteOffset === 0 && body.byteLength === body.buffer.byteLength && body.buffer instanceof ArrayBuffer;
      return ask<ValidatedImage>(leastInHand(), body ? { id: ++ids, path, body } : { id: ++ids, path }, owned ? [body.buffer as ArrayBuffer] : []);
    },
    async close() {
      await Promise.all(workers.map((w) => w.terminate()));
    },
  };
}
