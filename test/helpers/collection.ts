/**
 * A ledger whose gbifIDs are done with real files (small JPEGs made by
 * sharp), written in herbdl's layout and adopted: no host needed. For the
 * commands that read a finished collection (pack).
 */
import { spawnSync } from 'node:child_process';
import { closeSync, constants, mkdirSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import sharp from 'sharp';
import { herbdlJson } from './cli.js';
import { writeMultimedia } from './multimedia.js';

/** Where image `nn` of `id` is in the tree. */
export const rel = (id: number, nn: number) => `${String(id).slice(0, 3)}/${String(id).slice(3, 6)}/${id}-${String(nn).padStart(2, '0')}.jpg`;

/** A ledger whose gbifIDs are done with real files: written in herbdl's layout, then adopted (no host needed). */
export async function collection(
  dir: string,
  name: string,
  ids: number,
  imagesPerId: (i: number) => number,
  /** Each image's URL (a loopback host's, for a test that fetches it again); pack.example's by default. */
  urlOf: (id: number, n: number) => string = (id, n) => `https://pack.example/${id}/${n}.jpg`,
  /** The ledger: a SQLite file in `dir` by default, or a PostgreSQL URL. */
  db = join(dir, `${name}.db`),
) {
  const images = join(dir, `${name}-images`);
  const rows: [number, string][] = [];
  const bodies = await Promise.all([0, 1, 2].map((s) => sharp({ create: { width: 60 + s, height: 40, channels: 3, background: { r: 40 * s, g: 90, b: 120 } } }).jpeg().toBuffer()));
  for (let i = 0; i < ids; i++) {
    const id = 7_100_000_000 + i * 13;
    for (let n = 0; n < imagesPerId(i); n++) {
      rows.push([id, urlOf(id, n)]);
      const path = join(images, rel(id, n));
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(path, bodies[(i + n) % 3]!);
    }
  }
  // One more gbifID with no files: pending, so never packed.
  rows.push([7_999_999_999, 'https://pack.example/pending.jpg']);
  herbdlJson(['ingest', '--db', db, writeMultimedia(join(dir, `${name}.txt`), rows)]);
  herbdlJson(['adopt', images, '--db', db, '--trust-jpeg']);
  return { db, images };
}


/**
 * Replaces a stored image by a named pipe: a command that reaches it waits
 * in its read, holding whatever it holds (a pack its folder, its rows of
 * the ledger), until the test lets it go. `held` resolves once a reader
 * has the pipe open (the write end is then kept open, so the reader waits
 * on); `feed` writes the image's bytes and closes it; `restore` puts the
 * file back.
 */
export function pipeInPlaceOf(path: string) {
  const body = readFileSync(path);
  rmSync(path);
  if (spawnSync('mkfifo', [path]).status !== 0) throw new Error(`mkfifo ${path} failed`);
  let fd: number | undefined;
  const held = async () => {
    const deadline = Date.now() + 30_000;
    while (fd === undefined) {
      try {
        // Non-blocking: without a reader the open fails (ENXIO) instead of waiting forever.
        fd = openSync(path, constants.O_WRONLY | constants.O_NONBLOCK);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENXIO' || Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, 5));
      }
    }
  };
  return {
    held,
    async feed() {
      await held();
      writeSync(fd as number, body);
      closeSync(fd as number);
    },
    restore() {
      rmSync(path);
      writeFileSync(path, body);
    },
  };
}
