/**
 * A first look at a body: does it start like an image file? Catches the HTML
 * terms pages hosts serve with status 200 before a byte is stored; lets a
 * JSON object (a IIIF document) through to be read by content. (Full decoding is the validation step's job.)
 */
const SIGNATURES: readonly (readonly (number | null)[])[] = [
  [0xff, 0xd8, 0xff], // JPEG
  [0x89, 0x50, 0x4e, 0x47], // PNG
  [0x47, 0x49, 0x46, 0x38], // GIF
  [0x49, 0x49, 0x2a, 0x00], // TIFF, little-endian
  [0x4d, 0x4d, 0x00, 0x2a], // TIFF, big-endian
  [0x42, 0x4d], // BMP
  [0x52, 0x49, 0x46, 0x46, null, null, null, null, 0x57, 0x45, 0x42, 0x50], // WebP
  [0x00, 0x00, 0x00, 0x0c, 0x6a, 0x50, 0x20, 0x20], // JPEG 2000 (JP2)
  [0xff, 0x4f, 0xff, 0x51], // JPEG 2000 codestream
  [null, null, null, null, 0x66, 0x74, 0x79, 0x70], // ISO BMFF: AVIF, HEIC
];

/**
 * A JSON object: maybe a IIIF manifest or info.json, which the scheduler
 * reads by content (hosts serve them as application/json, ld+json, text/plain
 * or image/jpeg alike, and rows rarely say).
 */
export function looksLikeJson(head: Buffer): boolean {
  let i = head[0] === 0xef && head[1] === 0xbb && head[2] === 0xbf ? 3 : 0;
  while (i < head.length && (head[i] === 0x20 || head[i] === 0x09 || head[i] === 0x0a || head[i] === 0x0d)) i++;
  return head[i] === 0x7b; // '{'
}

export function looksLikeImage(head: Buffer): boolean {
  return SIGNATURES.some((sig) => sig.length <= head.length && sig.every((b, i) => b === null || head[i] === b));
}
