/**
 * Numbers for stretches of a chunk's text (a host, a row's kind or rights
 * columns). A dataset's rows repeat them, so a stretch equal to the row
 * before's costs a compare; any other is cut out and looked up in the
 * numbering's Map. (A hashed table of recent stretches in front of the Map
 * was tried: hashing in JavaScript cost more than V8's Map lookup saves.)
 */

export class SpanNumbers {
  private lastText: string | undefined;
  private lastNumber = 0;

  constructor(private readonly numberOf: (key: string) => number) {}

  /** The number of text[start, end). */
  of(text: string, start: number, end: number): number {
    const last = this.lastText;
    if (last !== undefined && last.length === end - start && text.startsWith(last, start)) return this.lastNumber;
    // A view of the chunk is enough here: it is replaced by the next row that differs.
    this.lastText = text.slice(start, end);
    this.lastNumber = this.numberOf(this.lastText);
    return this.lastNumber;
  }
}
