/**
 * gbifIDs in a growing Float64Array: 8 bytes each, off the JS heap that a
 * run's or an ingest's young objects churn through, and handed on as one
 * buffer. Used by the ingest's new gbifIDs (ledger/postgres/new-ids.ts) and
 * a run's set-aside ones (scheduler/blocked-asides.ts).
 */
export class IdList {
  private buf: Float64Array;
  length = 0;

  constructor(capacity = 8) {
    this.buf = new Float64Array(capacity);
  }

  push(gbifId: number): void {
    if (this.length === this.buf.length) {
      const grown = new Float64Array(this.length * 2);
      grown.set(this.buf);
      this.buf = grown;
    }
    this.buf[this.length++] = gbifId;
  }

  pop(): number {
    return this.buf[--this.length] as number;
  }

  /** The gbifIDs, in a buffer of their own; the list is left empty, its room kept for the next. */
  take(): Float64Array {
    const ids = this.buf.slice(0, this.length);
    this.length = 0;
    return ids;
  }

  /** Forgets them, keeping the room. */
  clear(): void {
    this.length = 0;
  }
}
