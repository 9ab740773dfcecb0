/**
 * Reading the usual row's fields where they lie in the decoded text, without
 * cutting the line into strings first. Each reader here accepts only what it
 * is sure of and answers "not sure" otherwise; the caller then hands the row
 * to classifyRow (rows.ts), which stays the one definition of every rule.
 * So these may be strict, never lax: a test holds them to classifyRow's
 * answers on every real sample row and on rows made to be awkward.
 */
import { URL_HASH_SEED, urlHashFinish } from './url-hash.js';

/** Not sure: the caller asks classifyRow. */
export const UNSURE = -1;

/**
 * The gbifID in text[start, end) when it is plain digits (no sign, no
 * space) and positive; UNSURE otherwise. 15 digits at most, so it is exact.
 */
export function plainGbifId(text: string, start: number, end: number): number {
  if (end - start === 0 || end - start > 15) return UNSURE;
  let id = 0;
  for (let i = start; i < end; i++) {
    const digit = text.charCodeAt(i) - 48;
    if (digit < 0 || digit > 9) return UNSURE;
    id = id * 10 + digit;
  }
  return id > 0 ? id : UNSURE;
}

const HOST_CHAR = new Uint8Array(128);
for (const c of 'abcdefghijklmnopqrstuvwxyz0123456789.-') HOST_CHAR[c.charCodeAt(0)] = 1;
/** Path characters the parser keeps: PLAIN ones need no more thought, CAREFUL ones start a pattern it would change. */
const PLAIN = 1;
const CAREFUL = 2;
const PATH_CHAR = new Uint8Array(128);
for (const c of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_~!$&()*+,;=:@?') PATH_CHAR[c.charCodeAt(0)] = PLAIN;
for (const c of './%xX') PATH_CHAR[c.charCodeAt(0)] = CAREFUL;

const DOT = 46;
const SLASH = 47;
const PERCENT = 37;

/** The parts of a URL read in place. */
export interface UrlInPlace {
  hostStart: number;
  hostEnd: number;
  /** urlHash of the whole URL (url-hash.ts), taken in the same pass. */
  hash: number;
}

/** The hash lanes after each scheme, so the pass over the URL starts at its host. */
function lanesAfter(prefix: string): [number, number] {
  let [a, b] = URL_HASH_SEED as readonly [number, number];
  for (let i = 0; i < prefix.length; i++) {
    const c = prefix.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995);
    b ^= b >>> 13;
  }
  return [a, b];
}
const AFTER_HTTP = lanesAfter('http://');
const AFTER_HTTPS = lanesAfter('https://');

/**
 * True, with its host's bounds and its hash in `into`, if text[start, end)
 * is a URL that the WHATWG parser would give back unchanged (rows.ts,
 * normaliseUrl's fast path, says which); false when unsure.
 *
 * Stricter than normaliseUrl in two places, both harmless: a last host
 * label that starts with a digit is left to the parser (normaliseUrl looks
 * closer: only a numeric one needs it), and so is "xn--" anywhere.
 */
export function readCanonicalUrl(text: string, start: number, end: number, into: UrlInPlace): boolean {
  let i: number;
  let a: number;
  let b: number;
  if (text.startsWith('http://', start)) [i, a, b] = [start + 7, AFTER_HTTP[0], AFTER_HTTP[1]];
  else if (text.startsWith('https://', start)) [i, a, b] = [start + 8, AFTER_HTTPS[0], AFTER_HTTPS[1]];
  else return false;
  const hostStart = i;
  let labelStart = i;
  for (; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c === SLASH) break;
    if (c >= 128 || HOST_CHAR[c] === 0) return false;
    if (c === DOT) {
      // An empty label (a leading dot, or ".."): the parser would change or refuse it.
      if (i === labelStart) return false;
      labelStart = i + 1;
    } else if (c === 120 && text.startsWith('n--', i + 1)) {
      return false; // punycode: the parser checks it
    }
    // The hash's step, as in url-hash.ts (inline: this runs for every character of every URL).
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995);
    b ^= b >>> 13;
  }
  if (i === hostStart || i === end) return false;
  const hostEnd = i;
  const last = text.charCodeAt(labelStart);
  // A host ending in a dot, or a last label that may be numeric (an IPv4 form).
  if (labelStart === hostEnd || (last >= 48 && last <= 57)) return false;
  for (; i < end; i++) {
    const c = text.charCodeAt(i);
    const kind = c < 128 ? PATH_CHAR[c] : 0;
    if (kind !== PLAIN) {
      if (kind !== CAREFUL) return false;
      const next = text.charCodeAt(i + 1);
      if (c === DOT) {
        // Dot segments: "/.", "./" and "..".
        const previous = text.charCodeAt(i - 1);
        if (previous === SLASH || previous === DOT || next === SLASH) return false;
      } else if (c === PERCENT) {
        if (next === 50 && (text.charCodeAt(i + 2) | 0x20) === 101) return false; // "%2e" is a dot to the parser
      } else if (c !== SLASH && (next | 0x20) === 110 && text.startsWith('--', i + 2)) {
        return false; // "xn--"
      }
    }
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995);
    b ^= b >>> 13;
  }
  into.hostStart = hostStart;
  into.hostEnd = hostEnd;
  into.hash = urlHashFinish(a, b);
  return true;
}
