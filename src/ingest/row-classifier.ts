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
 * Chunks (about 60 KiB each) that go to the worker in one message, and come
 * back in one reply: posting a reply had cost the parsing thread about 76 us
 * a chunk, 0.76 s at 2M rows; in fours it parses the file in about a tenth
 * less CPU.
 */
const GROUP = 4;
/**
 * Groups sent ahead of the one being written: enough to keep both threads
 * busy. (64 single chunks were tried while a PostgreSQL bulk load still
 * stopped for each commit; once it no longer did, they ran no faster and
 * cost up to 30 MB of peak RSS.)
 */
const AHEAD = 3;

export class RowClassifier {
  private readonly worker: Worker;
  private readonly waiting: { resolve: (reply: ClassifyReply) => void; reject: (err: Error) => void }[] = [];
  private readonly queue: Promise<ClassifyReply>[] = [];
  /** Chunks handed on and not yet sent: the next group. */
  private gathered: Buffer[] = [];
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
    this.gathered.push(chunk);
    if (this.gathered.length >= GROUP) this.post();
    return this.queue.length >= AHEAD;
  }

  /** Results still to take: groups sent, and the one being gathered. */
  get pending(): number {
    return this.queue.length + (this.gathered.length > 0 ? 1 : 0);
  }

  /** The oldest group's result (the chunks gathered so far are sent if nothing else is waiting). */
  take(): Promise<ClassifyReply> {
    if (this.queue.length === 0 && this.gathered.length > 0) this.post();
    const next = this.queue.shift();
    if (!next) throw new Error('no chunk is being classified');
    return next;
  }

  private post(): void {
    const chunks = this.gathered;
    this.gathered = [];
    const reply = new Promise<ClassifyReply>((resolve, reject) => {
      if (this.failure) return reject(this.failure);
      this.waiting.push({ resolve, reject });
    });
    reply.catch(() => {}); // observed when taken
    const request: ClassifyRequest = { chunks };
    this.worker.postMessage(request, chunks.map((chunk) => chunk.buffer as ArrayBuffer));
    this.queue.push(reply);
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
    // Moved from the worker as a plain Uint8Array: a Buffer over the same bytes.
    const textBytes = Buffer.from(reply.textBytes.buffer, reply.textBytes.byteOffset, reply.textBytes.byteLength);
    const textEnds = reply.textEnds;
    return {
      count: reply.count,
      gbifIds: reply.gbifIds,
      urlHashes: reply.urlHashes,
      textBytes,
      textEnds,
      text: (k) => textBytes.toString('utf8', k === 0 ? 0 : textEnds[k - 1], textEnds[k]),
      hosts: reply.hosts,
      hostNames: this.hostNames,
      attributions: reply.attributions,
      packedAttributions: this.packedAttributions,
    };
  }
}
