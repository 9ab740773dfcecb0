/**
 * A body's chunks as they were read (src/fetch/body-chunks.ts): never joined
 * into new buffers, and ending as `for await` over the stream ends.
 */
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { bodyChunks } from '../src/fetch/body-chunks.js';

function chunks(n: number): Buffer[] {
  return Array.from({ length: n }, (_, i) => Buffer.alloc(1024, i));
}

describe('bodyChunks', () => {
  it('yields each chunk as it was pushed, the same buffer, even when several wait (for await would join them)', async () => {
    const pushed = chunks(10);
    const stream = new Readable({ read() {} });
    for (const c of pushed) stream.push(c);
    stream.push(null);
    const got: Buffer[] = [];
    for await (const c of bodyChunks(stream)) {
      got.push(c);
      // A slow consumer: more chunks are buffered meanwhile.
      await new Promise((r) => setTimeout(r, 1));
    }
    expect(got.length).toBe(10);
    got.forEach((c, i) => expect(c).toBe(pushed[i]));
  });

  it('pauses the stream while chunks wait, and takes them all', async () => {
    let reads = 0;
    const pushed = chunks(40);
    const stream = new Readable({
      highWaterMark: 1024,
      read() {
        reads++;
        this.push(pushed.shift() ?? null);
      },
    });
    let total = 0;
    let pausedSeen = false;
    for await (const c of bodyChunks(stream)) {
      pausedSeen ||= stream.isPaused();
      total += c.length;
      await new Promise((r) => setImmediate(r));
    }
    expect(total).toBe(40 * 1024);
    expect(pausedSeen).toBe(true);
    expect(reads).toBeGreaterThanOrEqual(40);
  });

  it("throws the stream's error, and a close before its end as a premature close", async () => {
    const failing = new Readable({ read() {} });
    failing.push(Buffer.from('abc'));
    setTimeout(() => failing.destroy(Object.assign(new Error('socket reset'), { code: 'ECONNRESET' })), 5);
    await expect((async () => { for await (const _ of bodyChunks(failing)) void _; })()).rejects.toMatchObject({ code: 'ECONNRESET' });
    const closed = new Readable({ read() {} });
    closed.push(Buffer.from('abc'));
    setTimeout(() => closed.destroy(), 5);
    await expect((async () => { for await (const _ of bodyChunks(closed)) void _; })()).rejects.toMatchObject({ code: 'ERR_STREAM_PREMATURE_CLOSE' });
  });

  it('destroys the stream when the loop stops early', async () => {
    const stream = new Readable({ read() {} });
    for (const c of chunks(3)) stream.push(c);
    for await (const _ of bodyChunks(stream)) break;
    expect(stream.destroyed).toBe(true);
  });
});
