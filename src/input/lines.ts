/**
 * Cuts a byte stream into chunks of whole lines. Only complete lines are ever
 * handed on: if the stream fails, the unterminated tail is dropped, so a
 * truncated file can never hand on a cut-off URL. Splitting at a byte 0x0A
 * never cuts a UTF-8 sequence. LF and CRLF both end a line (the reader of a
 * chunk drops the CR); a UTF-8 BOM at the start is dropped.
 */
/** A line longer than this is not GBIF text; stop before it takes the memory. */
export const MAX_LINE_BYTES = 16 * 1024 * 1024;

export class LineTooLongError extends Error {
  constructor(readonly lineNumber: number) {
    super(`line ${lineNumber} is longer than ${MAX_LINE_BYTES / 1024 / 1024} MiB: not a text file`);
  }
}

/**
 * About this many bytes per chunk handed on: large enough that messages are
 * few, small enough that the chunk decoded is an ordinary young-generation
 * string. A string over 128 KiB goes to V8's large-object space, one mapping
 * each: decoding 128 KiB chunks took six times as long as 60 KiB ones.
 */
const CHUNK_BYTES = 60 * 1024;

/**
 * The same bytes as chunks that hold whole lines only (each ends just
 * before a newline, which is dropped), for parsing elsewhere: a worker thread
 * decodes and splits them. The BOM is dropped, the unterminated last line is
 * handed on only when the input ends cleanly, and a line longer than
 * MAX_LINE_BYTES stops the read. Each chunk has memory of its own, to be
 * moved to another thread, unless `movable` is false: then it may be a view
 * of the input's buffer, to be read on this thread before the next is asked
 * for. The input's buffers may be overwritten once the next is asked for:
 * what is kept of one (the partial line) is copied.
 */
export async function* readLineChunks(input: AsyncIterable<Buffer>, options: { movable?: boolean } = {}): AsyncGenerator<Buffer> {
  const movable = options.movable ?? true;
  // The partial line (or few lines) left from the chunks before: small, so joining it is cheap.
  let carry: Buffer | undefined;
  let first = true;
  let lines = 0;
  const emit = (...pieces: Buffer[]): Buffer => {
    // A chunk read where it lies needs no copy (a tenth of the time exclude spends reading 10M lines).
    const chunk = !movable && pieces.length === 1 ? (pieces[0] as Buffer) : owned(...pieces);
    lines += countNewlines(chunk) + 1;
    return chunk;
  };
  for await (const raw of input) {
    let buf = raw;
    if (first) {
      if (buf[0] === 0xef && buf[1] === 0xbb && buf[2] === 0xbf) buf = buf.subarray(3);
      first = false;
    }
    let start = 0;
    if (carry) {
      const newline = buf.indexOf(10);
      if (newline < 0) {
        carry = Buffer.concat([carry, buf]);
        if (partialLine(carry) > MAX_LINE_BYTES) throw new LineTooLongError(lines + countNewlines(carry) + 1);
        continue;
      }
      // The carried lines and the end of the last one, joined without copying the whole read.
      yield emit(carry, buf.subarray(0, newline));
      carry = undefined;
      start = newline + 1;
    }
    while (buf.length - start >= CHUNK_BYTES) {
      const newline = buf.indexOf(10, start + CHUNK_BYTES - 1);
      if (newline < 0) break;
      yield emit(buf.subarray(start, newline));
      start = newline + 1;
    }
    if (start < buf.length) {
      carry = owned(buf.subarray(start));
      if (partialLine(carry) > MAX_LINE_BYTES) throw new LineTooLongError(lines + countNewlines(carry) + 1);
    }
  }
  if (carry && carry.length > 0) yield emit(carry[carry.length - 1] === 10 ? carry.subarray(0, carry.length - 1) : carry);
}

/** The pieces, joined in one copy with a memory of its own (never Node's shared pool), so it can be moved to another thread. */
function owned(...pieces: Buffer[]): Buffer {
  const copy = Buffer.allocUnsafeSlow(pieces.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of pieces) at += p.copy(copy, at);
  return copy;
}

/** Bytes after the last newline: the line still being read. */
function partialLine(buf: Buffer): number {
  return buf.length - (buf.lastIndexOf(10) + 1);
}

function countNewlines(buf: Buffer): number {
  let n = 0;
  for (let i = buf.indexOf(10); i >= 0; i = buf.indexOf(10, i + 1)) n++;
  return n;
}
