/**
 * The main thread's side of exclude's sorting thread (sort-worker.ts). The
 * list is read here and sorted there: while one batch is sorted and set
 * aside, the next is filled; while one merged block is appended to the
 * ledger, the next is merged. Sorting, writing and merging 10M IDs took a
 * quarter of excluding them on one thread (bench:exclude).
 *
 * The worker and the runs' folder start with the first full batch; a list
 * that fits in one is sorted here. The folder is made and removed here, so
 * nothing is left behind if the worker fails; only a kill -9 leaves it (in
 * the system's temporary folder, named herbdl-exclude-*).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { SortReply, SortRequest, SortWorkerData } from './sort-worker.js';
import { sortedBlocks } from './sorted-runs.js';

/** Batches in all: one being filled here while the other is sorted there. */
const BATCHES = 2;

export class SortThread {
  /** The worker and the runs' folder, from the first spill: a list that fits in one batch needs neither. */
  private started: { readonly worker: Worker; readonly dir: string } | undefined;
  private readonly free: Float64Array[] = [];
  private made = 0;
  private readonly inbox: SortReply[] = [];
  private wake: (() => void) | undefined;
  private failure: Error | undefined;
  private closing = false;

  constructor(private readonly batchSize: number) {}

  private start(): { readonly worker: Worker; readonly dir: string } {
    if (this.started) return this.started;
    const dir = mkdtempSync(join(tmpdir(), 'herbdl-exclude-'));
    const workerData: SortWorkerData = { dir };
    // Its JavaScript makes little garbage (the IDs are in typed arrays): a small young generation keeps its heap small.
    const worker = new Worker(new URL('./sort-worker.js', import.meta.url), { workerData, resourceLimits: { maxYoungGenerationSizeMb: 2 } });
    worker.on('message', (reply: SortReply) => {
      if (reply.kind === 'error') this.failure ??= Object.assign(new Error(`sorting the listed gbifIDs in ${dir} (a temporary folder: TMPDIR names another): ${reply.message}`), { code: reply.code });
      else this.inbox.push(reply);
      this.poke();
    });
    worker.on('error', (err) => {
      this.failure ??= err;
      this.poke();
    });
    worker.on('exit', (code) => {
      if (!this.closing) this.failure ??= new Error(`the thread sorting the listed gbifIDs stopped (exit code ${code})`);
      this.poke();
    });
    this.started = { worker, dir };
    return this.started;
  }

  /** An empty batch to fill: a new one while there are fewer than BATCHES, else one the worker is done with. */
  async take(): Promise<Float64Array> {
    while (this.free.length === 0 && this.made === BATCHES) {
      const reply = await this.receive();
      if (reply.kind === 'batch-back') this.free.push(reply.ids);
    }
    const batch = this.free.pop();
    if (batch) return batch;
    this.made++;
    return new Float64Array(this.batchSize);
  }

  /** Hands a full batch over to be sorted and set aside; it is not to be touched again (take another). */
  spill(batch: Float64Array): void {
    this.post({ kind: 'spill', ids: batch }, [batch.buffer as ArrayBuffer]);
  }

  /**
   * Every ID of the runs and of `last` (a batch not spilled, handed over
   * too), increasing and without repeats, in blocks of up to `size`. Each
   * block goes back to the worker when the next is asked for.
   */
  async *merged(last: Float64Array, size: number): AsyncGenerator<Float64Array> {
    if (!this.started) return yield* sortedBlocks(last, size);
    this.post({ kind: 'merge', last, size }, [last.buffer as ArrayBuffer]);
    for (;;) {
      const reply = await this.receive();
      if (reply.kind === 'end') return;
      if (reply.kind !== 'block') continue; // a batch's memory, no longer needed
      yield reply.ids.subarray(0, reply.length);
      this.post({ kind: 'block-back', ids: reply.ids }, [reply.ids.buffer as ArrayBuffer]);
    }
  }

  /** Whether `err` is this thread's own failure (its runs' disk is full, say): never the fault of a file being read. */
  owns(err: unknown): boolean {
    return err !== undefined && err === this.failure;
  }

  /** Stops the worker and removes the runs. */
  async close(): Promise<void> {
    this.closing = true;
    if (!this.started) return;
    await this.started.worker.terminate();
    rmSync(this.started.dir, { recursive: true, force: true });
  }

  private post(request: SortRequest, moved: ArrayBuffer[]): void {
    if (this.failure) throw this.failure;
    this.start().worker.postMessage(request, moved);
  }

  private async receive(): Promise<SortReply> {
    for (;;) {
      if (this.failure) throw this.failure;
      const reply = this.inbox.shift();
      if (reply) return reply;
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  private poke(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}
