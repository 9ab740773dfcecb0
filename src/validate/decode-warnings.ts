/**
 * Damage that libvips only reports as a warning, read for the right image,
 * so that a decode shrunk on load is stricter than a full one.
 *
 * libvips checks libjpeg's warnings ("premature end of data segment", "bad
 * Huffman code": damage inside a scan) before each 8-row strip it decodes,
 * so a warning raised while the last strip decodes fails nothing; it is only
 * reported when the image is closed ("read gave 1 warnings"). At full size
 * that strip is the last 8 rows (a 4:4:4 JPEG with bytes lost mid-file
 * passes a full decode: its data runs out there). Shrunk on load to 1/8 it
 * is the last 64 source rows, and that is where a decode thrown off by
 * damage anywhere in the scan usually runs out of data: shrunk decodes
 * alone passed nearly every sheet with bytes lost or zeroed mid-file. With
 * the warning read, a 1/8 decode fails every sheet a full decode fails, and
 * those whose damage shows only in the last rows too (bench/damage.mjs),
 * for 0.55x of a full decode's CPU on a 1600 x 2400 sheet and about 0.9x on
 * a 400 x 600 one, four at once (sharp's own work per image dominates there).
 *
 * sharp hands a warning to whichever pipeline of the process finishes next,
 * not to the one that raised it: libvips keeps one queue per process. A
 * pipeline that fails with no message of its own (libvips' error text is
 * shared too, and cleared by whichever pipeline ends) carries the queued
 * warnings in its error's message instead, so they are counted there as
 * well. So a decode is trusted only when no such warning reached this
 * thread while it ran; otherwise it is decoded again with nothing else
 * running (`alone`), where a warning can only be its own. Every sharp call
 * of validation runs through `vips`, which counts its warnings and holds it
 * back while a decode runs alone. This holds only while one thread of the
 * process runs sharp: the validator pool runs sharp on one worker, and nothing
 * outside src/validate uses sharp. libvips' operation cache stays off, so an
 * image closes (and warns) when its own pipeline ends, not at some later
 * eviction.
 */
import { createRequire } from 'node:module';
import type { Sharp, SharpInput, SharpOptions } from 'sharp';

type SharpModule = typeof import('sharp').default;
let loaded: SharpModule | undefined;

/**
 * sharp, loaded by the first pipeline this thread makes: loading it costs
 * a thread about 150 ms of CPU (semver, detect-libc, libvips' own start),
 * which scan-only workers never need and the libvips worker needs only for
 * what the scan leaves. A run of 1 image took 0.75 s, 0.35 s of it waiting
 * for the workers to start. Its CommonJS build, as sharp's ES module build
 * loads the same native binding through the same require cache.
 */
function sharp(): SharpModule {
  if (loaded) return loaded;
  loaded = createRequire(import.meta.url)('sharp') as SharpModule;
  // Each image is one task on one thread; the pool decides how many run at once.
  loaded.cache(false);
  loaded.concurrency(1);
  return loaded;
}

/** Warnings of damage seen by this thread so far (libvips' "read gave N warnings" when an image closes). */
let damageWarnings = 0;
const DAMAGE = /^read gave \d+ warnings/gm;

function count(message: string): void {
  damageWarnings += message.match(DAMAGE)?.length ?? 0;
}

/** Set on a validation worker that must not run libvips (validator-pool.ts): a pipeline there could take another thread's warnings. */
let forbidden = false;

export function forbidLibvips(): void {
  forbidden = true;
}

/** sharp(input, options) with its warnings counted: every pipeline validation runs is made here. */
export function image(input?: SharpInput, options?: SharpOptions): Sharp {
  if (forbidden) throw new Error('libvips called on a validation worker without it (validator-pool.ts)');
  return sharp()(input, options).on('warning', count);
}

/** sharp calls of this thread in flight, and the decode running alone (or waiting to), if any. */
let running = 0;
let exclusive: Promise<void> | undefined;
const drained: (() => void)[] = [];

async function counted<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    count((err as Error).message ?? '');
    throw err;
  }
}

/** A sharp call (`() => image(...)...toBuffer()`, `.metadata()`, `.toFile()`), started when no decode runs alone. */
export async function vips<T>(call: () => Promise<T>): Promise<T> {
  while (exclusive) await exclusive;
  running++;
  try {
    return await counted(call);
  } finally {
    running--;
    if (running === 0) for (const wake of drained.splice(0)) wake();
  }
}

/** `decode` once every other sharp call of this thread has ended, and none starts until it has. */
async function alone<T>(decode: () => Promise<T>): Promise<T> {
  while (exclusive) await exclusive;
  let release = (): void => {};
  exclusive = new Promise((resolve) => (release = resolve));
  try {
    while (running > 0) await new Promise<void>((resolve) => drained.push(resolve));
    const before = damageWarnings;
    const result = await counted(decode);
    // A plain error, as sharp's are: the caller's decodeFailure tells truncated from corrupt by the bytes.
    if (damageWarnings !== before) throw new Error('libjpeg reported damage in the last rows it decoded (premature end of data, or a bad code)');
    return result;
  } finally {
    exclusive = undefined;
    release();
  }
}

/**
 * `decode` (a decode that may be shrunk on load), trusted only if no warning
 * of damage came in while it ran; else decoded again alone, where a warning
 * fails it. A damaged image's warning makes suspects of the few decodes
 * beside it: each costs one more decode, never a wrong verdict.
 */
export async function strictDecode<T>(decode: () => Promise<T>): Promise<T> {
  const before = damageWarnings;
  const result = await vips(decode);
  return damageWarnings === before ? result : alone(decode);
}
