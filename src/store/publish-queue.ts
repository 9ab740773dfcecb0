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

  constructor(
    private readonly publisher: Publisher,
    private readonly onPublished: (items: readonly PublishItem[]) => void,
    private readonly onError: (err: unknown) => void,
    private readonly onIdle: () => void,
  ) {}

  get busy(): boolean {
    return this.active || this.waiting.length > 0;
  }

  push(item: PublishItem): void {
    this.waiting.push(item);
    void this.drain();
  }

  private async drain(): Promise<void> {
    if (this.active) return;
    this.active = true;
    try {
      while (this.waiting.length > 0) {
        const items = this.waiting.splice(0, MAX_BATCH);
        await this.publisher.publish(items);
        this.onPublished(items);
      }
    } catch (err) {
      this.onError(err);
    } finally {
      this.active = false;
      this.onIdle();
    }
  }
}
