/**
 * A shard's tar, written as it is made (webdataset.ts).
 */
import { writeAll } from '../store/durable.js';

/** Bytes of tar gathered before one write. */
const FLUSH_BYTES = 8 << 20;

/**
 * The tar's bytes gathered as tar-stream emits them and written 8 MB at a
 * time on libuv's pool while this thread reads the next files, one write in
 * flight at most. Reading each file synchronously and writing in large
 * pieces matters: an open, fstat, read and close request per image through
 * the pool took more time than the copying itself.
 */
export class ShardFile {
  private chunks: Buffer[] = [];
  private pending = 0;
  private writing: Promise<void> = Promise.resolve();
  private inFlight = false;

  constructor(private readonly fd: number) {}

  add(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.pending += chunk.length;
  }

  /** Starts writing what has gathered once it is 8 MB; waits first for the write before it, if that is still going. */
  async maybeFlush(): Promise<void> {
    if (this.pending < FLUSH_BYTES) return;
    if (this.inFlight) await this.writing;
    this.start();
  }

  /** Writes everything and waits for it. */
  async flush(): Promise<void> {
    await this.writing;
    this.start();
    await this.writing;
  }

  private start(): void {
    const chunks = this.chunks;
    this.chunks = [];
    this.pending = 0;
    if (chunks.length === 0) return;
    this.inFlight = true;
    this.writing = writeAll(this.fd, chunks).finally(() => (this.inFlight = false));
    // Its failure (a full disk) is thrown by the next flush; until then it must not count as unhandled, which ends the process with a stack.
    this.writing.catch(() => {});
  }
}
