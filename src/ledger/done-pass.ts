/**
 * A pass over the done gbifIDs in key order, a claim per batch, that ends
 * having taken every one of them (derive, verify; prune's over those with
 * images gone at the source). On a shared ledger a claim
 * passes over a gbifID another worker holds: a recheck replacing its file, a
 * derive, or a worker killed with -9 whose lease has not yet ended. The pass
 * comes back for those once the ledger is through, and waits while any is
 * still held, as a run waits for a dead worker's claims: a verify that passed
 * them over in silence called a tree whole that was not, and a derive left
 * them without their widths.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { DoneBatch } from './upkeep.js';

/** A claim of the next batch: above `after`, up to `limit`; or of `only` these gbifIDs. */
export type DoneClaim<T> = (after: number, limit: number, only?: readonly number[]) => Promise<DoneBatch<T>>;

/** How long a pass waits between asks for what others still hold: a lease ends on the second, a batch is let go in less. */
const WAIT_MS = 1000;

export class DonePass<T> {
  private after: number;
  private throughLedger = false;
  /** Passed over, not yet taken (a set: a round asks only those still waited for). */
  private readonly waiting = new Set<number>();
  private waited = false;
  /** What is left of the current round over `waiting`, and whether the round has taken any (undefined: none yet). */
  private round: number[] = [];
  private roundTook: boolean | undefined;

  constructor(
    private readonly claim: DoneClaim<T>,
    private readonly limit: number,
    after = -1,
    private readonly signal?: AbortSignal,
    /** Called once, when the pass first has to wait, with how many gbifIDs other workers hold. */
    private readonly onWait?: (held: number) => void,
  ) {
    this.after = after;
  }

  /**
   * Every done gbifID up to this one has been handed out by `next` (for a
   * stopped verify's --after): the pass's place in the ledger, or the one
   * before the first it still waits for.
   */
  get handedThrough(): number {
    let through = this.after;
    for (const id of this.waiting) through = Math.min(through, id - 1);
    return through;
  }

  /** The next batch, or undefined when every done gbifID has been handed out (or the signal stopped a wait). */
  async next(): Promise<T[] | undefined> {
    while (!this.throughLedger) {
      // A derive over millions of done gbifIDs that lack nothing claims batch after batch with nothing due: Ctrl-C is heard between them.
      if (this.signal?.aborted) return undefined;
      const { last, due, passedOver } = await this.claim(this.after, this.limit);
      for (const id of passedOver) this.waiting.add(id);
      if (last === undefined) this.throughLedger = true;
      else this.after = last;
      if (due.length > 0) return due;
    }
    while (this.waiting.size > 0) {
      if (this.round.length === 0) {
        // A round over every gbifID waited for; one that took none of them waits before the next.
        if (this.roundTook === false) {
          if (!this.waited) this.onWait?.(this.waiting.size);
          this.waited = true;
          await sleep(WAIT_MS, undefined, { signal: this.signal }).catch(() => {});
        }
        if (this.signal?.aborted) return undefined;
        this.round = [...this.waiting].sort((a, b) => a - b);
        this.roundTook = false;
      }
      const asked = this.round.splice(0, this.limit);
      const { due, passedOver } = await this.claim(-1, asked.length, asked);
      const held = new Set(passedOver);
      // Taken, or done no more (reopened, excluded, removed meanwhile): either way not waited for.
      for (const id of asked) if (!held.has(id)) this.waiting.delete(id);
      if (held.size < asked.length) this.roundTook = true;
      if (due.length > 0) return due;
    }
    return undefined;
  }
}
