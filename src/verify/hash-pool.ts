/**
 * Files hashed on worker threads (hash-worker.ts), a few more than the cores
 * so that reads from a cold disk or a network filesystem overlap. Paths go
 * out in small groups, to whichever thread has the fewest waiting.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { HashReply, HashRequest, HashResult } from './hash-worker.js';

/** Paths per message: few enough to spread a batch over the threads, enough that messages cost nothing beside the reads. */
const GROUP = 16;

interface Waiting {
  readonly resolve: (results: readonly HashResult[]) => void;
  readonly reject: (err: Error) => void;
}

export class HashPool {
  private readonly threads: { worker: Worker; waiting: Map<number, Waiting> }[];
  private seq = 0;

  constructor(size = availableParallelism() + 2) {
    this.threads = Array.from({ length: size }, () => {
      const worker = new Worker(new URL('./hash-worker.js', import.meta.url), { resourceLimits: { maxYoungGenerationSizeMb: 2 } });
      const thread = { worker, waiting: new Map<number, Waiting>() };
      worker.on('message', ({ id, results }: HashReply) => {
        thread.waiting.get(id)?.resolve(results);
        thread.waiting.delete(id);
      });
      const fail = (err: Error) => {
        for (const w of thread.waiting.values()) w.reject(err);
        thread.waiting.clear();
      };
      worker.on('error', fail);
      worker.on('exit', (code) => fail(new Error(`a hashing thread stopped (exit ${code})`)));
      return thread;
    });
  }

  /** Each path's sha256 or read error, in the paths' order. */
  async hash(paths: readonly string[]): Promise<HashResult[]> {
    const groups: Promise<readonly HashResult[]>[] = [];
    for (let k = 0; k < paths.length; k += GROUP) groups.push(this.send(paths.slice(k, k + GROUP)));
    return (await Promise.all(groups)).flat();
  }

  async close(): Promise<void> {
    await Promise.all(this.threads.map((t) => t.worker.terminate()));
  }

  private send(paths: readonly string[]): Promise<readonly HashResult[]> {
    const thread = this.threads.reduce((a, b) => (b.waiting.size < a.waiting.size ? b : a));
    const id = ++this.seq;
    return new Promise((resolve, reject) => {
      thread.waiting.set(id, { resolve, reject });
      const request: HashRequest = { id, paths };
      thread.worker.postMessage(request);
    });
  }
}
