/**
 * COPY ... FROM STDIN: its streams, and values in its text format
 * (tab-separated, `\N` for null, backslash, tab and line ends escaped).
 */
import type pg from 'pg';
import type { Writable } from 'node:stream';
import { from as copyFrom } from 'pg-copy-streams';

const ESCAPES: Record<string, string> = { '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r' };
const SPECIAL = /[\\\t\n\r]/;

export function copyText(s: string): string {
  return SPECIAL.test(s) ? s.replace(/[\\\t\n\r]/g, (c) => ESCAPES[c] as string) : s;
}

export function copyValue(v: unknown): string {
  return v === null || v === undefined ? '\\N' : copyText(String(v));
}

const TAB = 9;
const NEWLINE = 10;

/**
 * Rows in COPY's text format, written straight into bytes. Built as strings,
 * each megabyte then converted to UTF-8 on its way to the socket, the
 * conversion and the garbage of the strings took a fifth of the ingest
 * thread's time in a bulk load (1.5 and 2.0 of 15 s at 2M rows).
 */
export class CopyRows {
  private buf: Buffer;
  private at = 0;

  constructor(private readonly size = 1 << 20) {
    this.buf = Buffer.allocUnsafeSlow(size);
  }

  /** Bytes written since the last take. */
  get bytes(): number {
    return this.at;
  }

  /** A non-negative integer (a double up to 2^53), then a tab, or a newline if it ends the row. */
  int(n: number, last = false): void {
    this.room(18);
    let at = this.at;
    if (n < 100_000_000) at = this.digits(n, at, 0);
    else {
      // In two parts below 10^8 each, so the digits come from 32-bit integer arithmetic (a double's % is slow).
      const high = Math.floor(n / 100_000_000);
      at = this.digits(n - high * 100_000_000, this.digits(high, at, 0), 8);
    }
    this.buf[at++] = last ? NEWLINE : TAB;
    this.at = at;
  }

  /** Writes `n` (below 10^8) at `at` in at least `width` digits (zeros in front); returns where it ends. */
  private digits(n: number, at: number, width: number): number {
    let count = 1;
    for (let v = n; v >= 10; v = (v / 10) | 0) count++;
    if (count < width) count = width;
    const end = at + count;
    for (let i = end - 1, v = n; i >= at; i--) {
      const q = (v / 10) | 0;
      this.buf[i] = 48 + v - q * 10;
      v = q;
    }
    return end;
  }

  /** A text, escaped, then a tab, or a newline if it ends the row. */
  text(s: string, last = false): void {
    const escaped = copyText(s);
    this.room(escaped.length * 3 + 1);
    this.at += this.buf.write(escaped, this.at);
    this.buf[this.at++] = last ? NEWLINE : TAB;
  }

  /** The rows written so far, as bytes of their own (a stream may hold them a while); the next are written anew. */
  take(): Buffer {
    const rows = this.buf.subarray(0, this.at);
    this.buf = Buffer.allocUnsafeSlow(this.size);
    this.at = 0;
    return rows;
  }

  private room(n: number): void {
    if (this.at + n <= this.buf.length) return;
    const grown = Buffer.allocUnsafeSlow(Math.max(this.buf.length * 2, this.at + n));
    this.buf.copy(grown, 0, 0, this.at);
    this.buf = grown;
  }
}

/** A COPY ... FROM STDIN in progress: its stream, and its end. */
export interface CopyIn {
  readonly stream: Writable;
  /** Rejects if the COPY fails (the server went away): the next send or end says so. */
  readonly done: Promise<void>;
}

export function startCopy(client: pg.PoolClient, sql: string): CopyIn {
  const stream = client.query(copyFrom(sql));
  const done = new Promise<void>((resolve, reject) => {
    stream.on('finish', resolve);
    stream.on('error', reject);
  });
  done.catch(() => {}); // observed by send() and by the end
  return { stream, done };
}

/** Sends bytes on a COPY, waiting while the socket is full. */
export async function send(copy: CopyIn, bytes: Buffer | string): Promise<void> {
  if (!copy.stream.write(bytes)) await Promise.race([new Promise((r) => copy.stream.once('drain', r)), copy.done]);
}
