/**
 * Splits a byte stream into text lines, in batches so the per-line cost is a
 * string split, not a generator step. Only complete lines are ever yielded: if
 * the stream fails, the unterminated tail is dropped, so a truncated file can
 * never hand on a cut-off URL. LF and CRLF both end a line; a UTF-8 BOM at the
 * start is dropped.
 */
import type { Readable } from 'node:stream';

/** A line longer than this is not GBIF text; stop before it takes the memory. */
export const MAX_LINE_BYTES = 16 * 1024 * 1024;

export class LineTooLongError extends Error {
  constructor(readonly lineNumber: number) {
    super(`line ${lineNumber} is longer than ${MAX_LINE_BYTES / 1024 / 1024} MiB: not a text file`);
  }
}

export async function* readLineBatches(stream: Readable): AsyncGenerator<string[]> {
  let tail: Buffer | undefined;
  let first = true;
  let linesSoFar = 0;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    const buf: Buffer = tail ? Buffer.concat([tail, chunk]) : chunk;
    const lastNewline = buf.lastIndexOf(10);
    if (lastNewline < 0) {
      if (buf.length > MAX_LINE_BYTES) throw new LineTooLongError(linesSoFar + 1);
      tail = buf;
      continue;
    }
    // Splitting at a byte 0x0A never cuts a UTF-8 sequence, so decoding here is safe.
    let text = buf.toString('utf8', 0, lastNewline);
    tail = lastNewline + 1 < buf.length ? buf.subarray(lastNewline + 1) : undefined;
    if (first) {
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
      first = false;
    }
    const lines = text.split('\n');
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i] as string;
      if (line.length > 0 && line.charCodeAt(line.length - 1) === 13) lines[i] = line.slice(0, -1);
    }
    linesSoFar += lines.length;
    yield lines;
  }
  if (tail && tail.length > 0) {
    let text = tail.toString('utf8');
    if (first && text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    if (text.endsWith('\r')) text = text.slice(0, -1);
    yield [text];
  }
}
