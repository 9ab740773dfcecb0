/**
 * COPY ... FROM STDIN: its streams, and values in its text format
 * (tab-separated, `\N` for null, backslash, tab and line ends escaped), which
 * migrate writes; ingest writes the binary format (copy-binary.ts).
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

/** A COPY ... FROM STDIN in progress: its stream, and its end. */
export interface CopyIn {
  readonly stream: Writable;
  /** Rejects if the COPY fails (the server went away): the next send or end says so. */
  readonly done: Promise<void>;
  /**
   * Whether the COPY has failed (a full disk on the server, a lost
   * connection). Nothing may be written to its stream then: pg-copy-streams
   * 7 has let go of the connection and throws a TypeError from inside the
   * write (its open issue 171), which would hide the server's own error.
   */
  readonly failed: boolean;
}

export function startCopy(client: pg.PoolClient, sql: string): CopyIn {
  const stream = client.query(copyFrom(sql));
  let failed = false;
  const done = new Promise<void>((resolve, reject) => {
    stream.on('finish', resolve);
    stream.on('error', (err) => {
      failed = true;
      reject(err);
    });
  });
  done.catch(() => {}); // observed by send() and by the end
  return {
    stream,
    done,
    get failed() {
      return failed;
    },
  };
}

/** Sends bytes on a COPY, waiting while the socket is full; rejects with the COPY's error once it failed. */
export async function send(copy: CopyIn, bytes: Buffer | string): Promise<void> {
  if (copy.failed) return copy.done;
  if (!copy.stream.write(bytes)) await Promise.race([new Promise((r) => copy.stream.once('drain', r)), copy.done]);
}

/** Ends a COPY with its last bytes; resolves once the server has every row, rejects with the COPY's error. */
export async function endCopy(copy: CopyIn, last: Buffer | string): Promise<void> {
  if (!copy.failed) copy.stream.end(last);
  await copy.done;
}
