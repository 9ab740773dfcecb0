/**
 * Classifying rows on a worker thread, in input order: the main thread reads
 * the input and writes the ledger, the worker parses. Chunks go out as they
 * are read, a few ahead (so memory stays bounded), and come back in order.
 */
import { Worker } from 'node:worker_threads';
import type { ColumnMap } from '../input/columns.js';
import type { ImageBatch } from '../ledger/ledger.js';
import type { ClassifyReply, ClassifyRequest } from './classify-worker.js';

/**
 * Chunks (about 60 KiB each) sent ahead of the one being written: enough to
 * keep both threads busy. (64 were tried while a PostgreSQL bulk load still
 * stopped for each commit; once it no longer did, they ran no faster and
 * cost up to 30 MB of peak RSS.)
 */
const AHEAD = 8;

export class RowClassifier {
  private readonly worker: Worker;
  private readonly waiting: { resolve: (reply: ClassifyReply) => void; reject: (err: Error) => void }[] = [];
  private readonly queue: Promise<ClassifyReply>[] = [];
  private failure: Error | undefined;

  constructor(columns: ColumnMap) {
    // The worker's heap is small by design: a few chunks and their strings.
    this.worker = new Worker(new URL('./classify-worker.js', import.meta.url), { workerData: columns, resourceLimits: { maxOldGenerationSizeMb: 32, maxYoungGenerationSizeMb: 8 } });
    this.worker.on('message', (reply: ClassifyReply) => this.waiting.shift()?.resolve(reply));
    const fail = (err: Error) => {
      this.failure = err;
      for (const w of this.waiting.splice(0)) w.reject(err);
    };
    this.worker.on('error', fail);
    this.worker.on('exit', (code) => {
      if (this.waiting.length > 0) fail(new Error(`the row classifier stopped (exit ${code})`));
    });
  }

  /** Hands a chunk of whole lines on; true when the caller should take a result before sending more. */
  send(chunk: Buffer): boolean {
    const reply = new Promise<ClassifyReply>((resolve, reject) => {
      if (this.failure) return reject(this.failure);
      this.waiting.push({ resolve, reject });
    });
    reply.catch(() => {}); // observed when taken
    const request: ClassifyRequest = { chunk };
    this.worker.postMessage(request, [chunk.buffer as ArrayBuffer]);
    this.queue.push(reply);
    return this.queue.length >= AHEAD;
  }

  get pending(): number {
    return this.queue.length;
  }

  /** The oldest chunk's result. */
  take(): Promise<ClassifyReply> {
    const next = this.queue.shift();
    if (!next) throw new Error('no chunk is being classified');
    return next;
  }

  async close(): Promise<void> {
    await this.worker.terminate();
  }
}

/**
 * Replies as the ledger writer takes them. Hosts and attributions come as
 * numbers into lists sent once; the lists here grow with each reply, and are
 * new lists when the worker's numbering starts again.
 */
export class ReplyReader {
  private hostNames: string[] = [];
  private packedAttributions: string[] = [];

  batch(reply: ClassifyReply): ImageBatch {
    if (reply.restart) {
      this.hostNames = [];
      this.packedAttributions = [];
    }
    for (const host of reply.newHosts) this.hostNames.push(host);
    for (const attribution of reply.newAttributions) this.packedAttributions.push(attribution);
    return {
      count: reply.count,
      gbifIds: reply.gbifIds,
      urlHashes: reply.urlHashes,
      texts: reply.count === 0 ? [] : reply.texts.split('\t'),
      hosts: reply.hosts,
      hostNames: this.hostNames,
      attributions: reply.attributions,
      packedAttributions: this.packedAttributions,
    };
  }
}
