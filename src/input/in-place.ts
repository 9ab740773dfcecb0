/**
 * Reading the usual row's fields where they lie in the decoded text, without
 * cutting the line into strings first. Each reader here accepts only what it
 * is sure of and answers "not sure" otherwise; the caller then hands the row
 * to classifyRow (rows.ts), which stays the one definition of every rule.
 * So these may be strict, never lax: a test holds them to classifyRow's
 * answers on every real sample row and on rows made to be awkward.
 */

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
const PATH_CHAR = new Uint8Array(128);
for (const c of 'abcdefghijklmnopqrstuvwxyz0123456789.-') HOST_CHAR[c.charCodeAt(0)] = 1;
for (const c of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&()*+,;=:@/%?') PATH_CHAR[c.charCodeAt(0)] = 1;

const DOT = 46;
const SLASH = 47;
const PERCENT = 37;

/**
 * Where the host ends, if text[start, end) is a URL that the WHATWG parser
 * would give back unchanged (rows.ts, normaliseUrl's fast path, says which);
 * UNSURE otherwise. The host starts after "http://" or "https://".
 *
 * Stricter than normaliseUrl in two places, both harmless: any label that
 * starts with a digit ends the host test (normaliseUrl looks closer: only a
 * numeric last label needs the parser), and so does "xn--" or "%2e" anywhere.
 */
export function canonicalUrlHostEnd(text: string, start: number, end: number): number {
  let i: number;
  if (text.startsWith('http://', start)) i = start + 7;
  else if (text.startsWith('https://', start)) i = start + 8;
  else return UNSURE;
  const hostStart = i;
  let labelStart = i;
  for (; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c === SLASH) break;
    if (c >= 128 || HOST_CHAR[c] === 0) return UNSURE;
    if (c === DOT) {
      // An empty label (a leading dot, or ".."): the parser would change or refuse it.
      if (i === labelStart) return UNSURE;
      labelStart = i + 1;
    } else if (c === 120 && text.startsWith('n--', i + 1)) {
      return UNSURE; // punycode: the parser checks it
    }
  }
  if (i === hostStart || i === end) return UNSURE;
  const hostEnd = i;
  const last = text.charCodeAt(labelStart);
  // A host ending in a dot, or a last label that may be numeric (an IPv4 form).
  if (labelStart === hostEnd || (last >= 48 && last <= 57)) return UNSURE;
  let previous = SLASH;
  for (i = hostEnd + 1; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c >= 128 || PATH_CHAR[c] === 0) return UNSURE;
    // Dot segments ("/.", "./", ".."), and "%2e", which the parser reads as one.
    if ((c === DOT && (previous === SLASH || previous === DOT)) || (c === SLASH && previous === DOT)) return UNSURE;
    if (c === PERCENT && (text.charCodeAt(i + 1) === 50 && (text.charCodeAt(i + 2) | 0x20) === 101)) return UNSURE;
    if ((c | 0x20) === 120 && (text.charCodeAt(i + 1) | 0x20) === 110 && text.charCodeAt(i + 2) === 45 && text.charCodeAt(i + 3) === 45) return UNSURE;
    previous = c;
  }
  return hostEnd;
}
