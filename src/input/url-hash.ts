/**
 * A 53-bit hash of a normalised URL (two 32-bit FNV-style lanes): what a
 * ledger indexes image URLs by, so an image URL shared by many gbifIDs is
 * found and fetched once. Computed while rows are read, on the parsing
 * thread. Collisions are possible at 50M URLs, so a ledger confirms a match
 * on the URL itself.
 */
export function urlHash(url: string): number {
  return urlHashOf(url, 0, url.length);
}

/** The hash's two lanes before any character (in-place.ts steps them itself, inline). */
export const URL_HASH_SEED = [0x811c9dc5, 0x9747b28c] as const;

/** The hash from its two lanes after the last character. */
export function urlHashFinish(a: number, b: number): number {
  return ((a >>> 0) % 0x200000) * 0x100000000 + (b >>> 0);
}

/** urlHash of text.slice(start, end), without making the slice. */
export function urlHashOf(text: string, start: number, end: number): number {
  let [a, b] = URL_HASH_SEED as readonly [number, number];
  for (let i = start; i < end; i++) {
    const c = text.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995);
    b ^= b >>> 13;
  }
  return urlHashFinish(a, b);
}
