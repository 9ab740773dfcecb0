/** What a snapshot ingest remembers it listed: a bit per image id, and the ids it did not list, in order. */
import { describe, expect, it } from 'vitest';
import { ListedImages } from '../src/ledger/listed-images.js';

const unmarked = (listed: ListedImages, size?: number) => [...listed.unmarked(size)].flatMap((batch) => [...batch]);

describe('ListedImages', () => {
  it('gives back every id from 1 to the last that was not marked, in order, across bytes', () => {
    const listed = new ListedImages(20);
    for (const id of [1, 2, 3, 5, 7, 8, 9, 15, 16, 17, 20]) listed.mark(id);
    expect(unmarked(listed)).toEqual([4, 6, 10, 11, 12, 13, 14, 18, 19]);
  });

  it('in batches of the size asked, the last one short', () => {
    const listed = new ListedImages(1000);
    for (let id = 1; id <= 1000; id++) if (id % 10 !== 0) listed.mark(id);
    const batches = [...listed.unmarked(30)].map((batch) => [...batch]);
    expect(batches.map((b) => b.length)).toEqual([30, 30, 30, 10]);
    expect(batches.flat()).toEqual(Array.from({ length: 100 }, (_, i) => (i + 1) * 10));
  });

  it('ignores ids past the last (images this ingest added: listed), and never gives 0 or more than the last', () => {
    const listed = new ListedImages(9);
    listed.mark(10);
    listed.mark(4_000_000);
    expect(unmarked(listed)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    for (let id = 1; id <= 9; id++) listed.mark(id);
    expect(unmarked(listed)).toEqual([]);
  });

  it('at a real export\'s size (59M images), finds the few it did not list', () => {
    const last = 59_000_000;
    const skipped = new Set([1, 16_777_217, 33_554_432, 58_999_999]);
    const listed = new ListedImages(last);
    for (let id = 1; id <= last; id++) if (!skipped.has(id)) listed.mark(id);
    expect(unmarked(listed)).toEqual([...skipped]);
  });
});
