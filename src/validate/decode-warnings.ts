/**
 * Damage that libvips only reports as a warning, and how a decode shrunk on
 * load is made as strict as a full one.
 *
 * libvips checks libjpeg's warnings ("premature end of data segment", "bad
 * Huffman code": damage inside a scan) before each 8-row strip it decodes,
 * so a warning raised while the last strip decodes fails nothing; it is only
 * reported when the image is closed ("read gave 1 warnings"). At full size
 * that strip is the last 8 rows. Shrunk on load to 1/8 it is the last 64
 * source rows, and that is where a decode thrown off by damage anywhere in
 * the scan usually runs out of data: such decodes passed nearly every sheet
 * with bytes lost or zeroed mid-file, where a full decode failed them. With
 * the warning read, a 1/8 decode fails exactly the sheets a full decode fails
 * (500 damaged 400 x 600 sheets and 100 of 1600 x 2400, bench/damage.mjs),
 * for 0.55x of a full decode's CPU on a 1600 x 2400 sheet and about 0.9x on
 * a 400 x 600 one, four at once (sharp's own work per image dominates there).
 *
 * sharp hands a warning to whichever pipeline of the process finishes next,
 * not to the one that raised it: libvips keeps one queue per process. A
 * pipeline that fails with no message of its own (libvips' error text is
 * shared too, and cleared by whichever pipeline ends) carries the queued
 * warnings in its error's message instead, so they are counted there as
 * well: every sharp call of validation runs through `vips`. So a
 * shrunk decode is trusted only when no such warning reached this thread
 * while it ran; otherwise the image is decoded again in full, and that
 * decode's failure is its own (a failure is per pipeline; only the message
 * is shared, and decode-failure.ts never reads it). This holds only while
 * one thread of the process runs sharp, and every pipeline it runs is made
 * here: the validator pool keeps one worker, and nothing outside src/validate
 * uses sharp. libvips' operation cache stays off, so an image closes (and
 * warns) when its own pipeline ends, not at some later eviction.
 */
import sharp, { type Sharp, type SharpInput, type SharpOptions } from 'sharp';

// Each image is one task on one thread; the pool decides how many run at once.
sharp.cache(false);
sharp.concurrency(1);

/** Warnings of damage seen by this thread so far (libvips' "read gave N warnings" when an image closes). */
let damageWarnings = 0;

const DAMAGE = /^read gave \d+ warnings/gm;

function count(message: string): void {
  damageWarnings += message.match(DAMAGE)?.length ?? 0;
}

/** sharp(input, options) with its warnings counted: every pipeline validation runs is made here. */
export function image(input?: SharpInput, options?: SharpOptions): Sharp {
  return sharp(input, options).on('warning', count);
}

/** A sharp call (`image(...)...toBuffer()`, `.metadata()`, `.toFile()`), with the warnings its failure carries counted. */
export async function vips<T>(call: Promise<T>): Promise<T> {
  try {
    return await call;
  } catch (err) {
    count((err as Error).message ?? '');
    throw err;
  }
}

/**
 * `shrunk` (a decode that may be shrunk on load), trusted only if no warning
 * of damage came in while it ran; else `full`, a decode at full size whose
 * failure is its own. A damaged image's warning makes suspects of the few
 * decodes beside it: each costs one full decode, never a wrong verdict.
 */
export async function strictDecode<T>(shrunk: () => Promise<T>, full: () => Promise<T>): Promise<T> {
  const before = damageWarnings;
  const result = await shrunk();
  return damageWarnings === before ? result : full();
}
