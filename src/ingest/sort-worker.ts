/**
 * Exclude's second thread: sorts each full batch of listed IDs and sets it
 * aside as a run (sorted-runs.ts) while the main thread reads the next one,
 * then merges the runs a block at a time while the main thread appends the
 * block before to the ledger. See sort-thread.ts for the other side.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { SortedRuns } from './sorted-runs.js';

export interface SortWorkerData {
  /** The folder for the runs: the main thread's, which removes it. */
  readonly dir: string;
}

/** From the main thread: a full batch to sort, the last batch and the merge, or a merged block handed back for reuse. */
export type SortRequest =
  | { readonly kind: 'spill'; readonly ids: Float64Array }
  | { readonly kind: 'merge'; readonly last: Float64Array; readonly size: number }
  | { readonly kind: 'block-back'; readonly ids: Float64Array };

/** To the main thread: a batch's memory back to refill, a merged block (its first `length` IDs), the end, or what went wrong. */
export type SortReply =
  | { readonly kind: 'batch-back'; readonly ids: Float64Array }
  | { readonly kind: 'block'; readonly ids: Float64Array; readonly length: number }
  | { readonly kind: 'end' }
  | { readonly kind: 'error'; readonly message: string; readonly code?: string };

/** Merged blocks out at a time: one being appended to the ledger, one ready after it. */
const BLOCKS_AHEAD = 2;

const port = parentPort;
const runs = new SortedRuns((workerData as SortWorkerData).dir);
const spare: Float64Array[] = [];
let credit = BLOCKS_AHEAD;
let resume: (() => void) | undefined;

function send(reply: SortReply, moved: ArrayBuffer[] = []): void {
  port?.postMessage(reply, moved);
}

function fail(err: unknown): void {
  const e = err as NodeJS.ErrnoException;
  send({ kind: 'error', message: e?.message ?? String(err), ...(e?.code ? { code: e.code } : {}) });
}

async function merge(last: Float64Array, size: number): Promise<void> {
  for (const block of runs.merged(last, size)) {
    while (credit === 0) await new Promise<void>((r) => (resume = r));
    credit--;
    const out = spare.pop() ?? new Float64Array(size);
    out.set(block);
    send({ kind: 'block', ids: out, length: block.length }, [out.buffer as ArrayBuffer]);
  }
  send({ kind: 'end' });
}

port?.on('message', (request: SortRequest) => {
  try {
    if (request.kind === 'spill') {
      runs.spill(request.ids);
      send({ kind: 'batch-back', ids: request.ids }, [request.ids.buffer as ArrayBuffer]);
    } else if (request.kind === 'merge') {
      merge(request.last, request.size).catch(fail);
    } else {
      spare.push(request.ids);
      credit++;
      resume?.();
      resume = undefined;
    }
  } catch (err) {
    fail(err);
  }
});
