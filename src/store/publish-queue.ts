/**
 * Group commit: gbifIDs ready to publish wait here while a batch is being
 * published, then go together in the next one (one fsync round and two
 * ledger transactions per batch, not per gbifID).
 */
import type { PublishItem, Publisher } from './publisher.js';

const MAX_BATCH = 256;

export class PublishQueue {
  private readonly waiting: PublishItem[] = [];
  private active = false;
  /** Closed by a run that failed: nothing more is published, and what waits is dropped (its gbifIDs stay pending). */
  private closed = false;

  constructor(
    private readonly publisher: Publisher,
    /** `unfinished`: gbifIDs among `items` the ledger left pending (they gained an image since they were claimed). */
    private readonly onPublished: (items: readonly PublishItem[], unfinished: readonly number[]) => void,
    private readonly onError: (err: unknown) => void,
    private readonly onIdle: () => void,
  ) {}

  /** A batch is being published, or one waits to be. */
  get busy(): boolean {
    return this.active || this.waiting.length > 0;
  }

  push(item: PublishItem): void {
    if (this.closed) return;
    this.waiting.push(item);
    void this.drain();
  }

  /** No batch starts from now on; one being published ends (busy says when). */
  close(): void {
    this.closed = true;
    this.waiting.length = 0;
  }

  private async drain(): Promise<void> {
    if (this.active) return;
    this.active = true;
    try {
      while (this.waiting.length > 0 && !this.closed) {
        const items = this.waiting.splice(0, MAX_BATCH);
        this.onPublished(items, await this.publisher.publish(items));
      }
    } catch (err) {
      this.onError(err);
    } finally {
      this.active = false;
      this.onIdle();
    }
  }
}
