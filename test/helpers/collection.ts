/**
 * A ledger whose gbifIDs are done with real files (small JPEGs made by
 * sharp), written in herbdl's layout and adopted: no host needed. For the
 * commands that read a finished collection (pack).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import sharp from 'sharp';
import { herbdlJson } from './cli.js';
import { writeMultimedia } from './multimedia.js';

/** Where image `nn` of `id` is in the tree. */
export const rel = (id: number, nn: number) => `${String(id).slice(0, 3)}/${String(id).slice(3, 6)}/${id}-${String(nn).padStart(2, '0')}.jpg`;

/** A ledger whose gbifIDs are done with real files: written in herbdl's layout, then adopted (no host needed). */
export async function collection(dir: string, name: string, ids: number, imagesPerId: (i: number) => number) {
  const db = join(dir, `${name}.db`);
  const images = join(dir, `${name}-images`);
  const rows: [number, string][] = [];
  const bodies = await Promise.all([0, 1, 2].map((s) => sharp({ create: { width: 60 + s, height: 40, channels: 3, background: { r: 40 * s, g: 90, b: 120 } } }).jpeg().toBuffer()));
  for (let i = 0; i < ids; i++) {
    const id = 7_100_000_000 + i * 13;
    for (let n = 0; n < imagesPerId(i); n++) {
      rows.push([id, `https://pack.example/${id}/${n}.jpg`]);
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

