/**
 * Batches of work run a few at a time (adopt, derive): enough in flight to
 * keep every validation worker busy across the ledger's round trips, few
 * enough that memory stays flat. The first failure stops new batches
 * (`failed`) and is thrown once the ones under way have ended.
 */
export class InFlight {
  private readonly running = new Set<Promise<void>>();
  private failure: unknown;
  private hasFailed = false;

  constructor(private readonly limit: number) {}

  get failed(): boolean {
    return this.hasFailed;
  }

  /** Starts `work`; waits while `limit` batches are under way. */
  async add(work: Promise<void>): Promise<void> {
    const settled = work.catch((err: unknown) => {
      if (!this.hasFailed) this.failure = err;
      this.hasFailed = true;
    });
    this.running.add(settled);
    void settled.finally(() => this.running.delete(settled));
    if (this.running.size >= this.limit) await Promise.race(this.running);
  }

  /** Waits for every batch; throws the first failure. */
  async drain(): Promise<void> {
    await Promise.all(this.running);
    if (this.hasFailed) throw this.failure;
  }
}
