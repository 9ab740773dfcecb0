// Herbarium-sheet-like JPEGs for the download benchmarks: light paper with
// darker texture and noise, quality 85, so they compress as scanned sheets
// do (400 x 600 is about 53 KiB, 1600 x 2400 about 840 KiB, 4000 x 6000 a
// few MB). The same four bodies (seeds) for every server and baseline.
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import sharp from 'sharp';
import { HEADER } from './harness.mjs';

/** 'WxH' -> four JPEG bodies of that size. */
export async function sheetBodies(spec) {
  const [width, height] = spec.split('x').map(Number);
  return Promise.all(
    [0, 1, 2, 3].map(async (seed) => {
      const pixels = await sharp({ create: { width, height, channels: 3, background: '#d8d0c0', noise: { type: 'gaussian', mean: 180 + seed * 5, sigma: 30 } } })
        .blur(0.8)
        .raw()
        .toBuffer();
      return sharp(pixels, { raw: { width, height, channels: 3 } }).jpeg({ quality: 85 }).toBuffer();
    }),
  );
}

/** The loopback address of host i of n: 127.0.0.x for a few, 127.1.y.z for thousands. */
export function hostAddress(first, i, n) {
  if (n + first < 255) return `127.0.0.${first + i}`;
  return `127.1.${Math.floor(i / 250)}.${(i % 250) + 1}`;
}

/**
 * `ids` gbifIDs from `firstId`, one sheet of `spec` each, in herbdl's layout
 * under `tree` (each its own file, not hard links): an earlier download's
 * tree (bench:adopt) or a stored collection (bench:verify). Written once and
 * kept for later runs.
 */
export async function sheetTree(tree, ids, spec, firstId) {
  const marker = join(tree, '.complete');
  if (existsSync(marker)) return;
  rmSync(tree, { recursive: true, force: true });
  process.stderr.write(`writing ${ids.toLocaleString('en-US')} sheets of ${spec} into ${tree} ...\n`);
  const bodies = await sheetBodies(spec);
  for (let i = 0; i < ids; i++) {
    const s = String(firstId + i);
    const path = join(tree, s.slice(0, 3), s.slice(3, 6), `${s}-00.jpg`);
    if (i % 1000 === 0) mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, bodies[i % bodies.length]);
  }
  writeFileSync(marker, '');
}

/**
 * The stored tree bench:adopt and bench:verify share, from the command line:
 * `--ids` (100,000) gbifIDs of `--sheet` (400x600) sheets from FIRST_ID, in
 * `<bench>/out/adopt/tree-<ids>-<sheet>` (bench:pack reads the default one).
 */
export function sharedTree(benchDir) {
  const value = (name) => {
    const i = process.argv.indexOf(`--${name}`);
    return i > 0 ? process.argv[i + 1] : undefined;
  };
  const ids = Number(value('ids') ?? 100_000);
  const sheet = value('sheet') ?? '400x600';
  const dir = join(benchDir, 'out', 'adopt');
  return { ids, sheet, dir, tree: join(dir, `tree-${ids}-${sheet}`), firstId: 1_000_000_000 };
}

/** The multimedia file of the shared tree's gbifIDs (50 hosts, one sheet each), written once: adopt, verify and pack ingest it. */
export function treeListing({ ids, dir, firstId }) {
  const file = join(dir, `multimedia-${ids}.txt`);
  if (!existsSync(file)) {
    const rows = Array.from({ length: ids }, (_, i) => `${firstId + i}\tStillImage\timage/jpeg\thttps://herbarium${i % 50}.example.org/${i}.jpg`);
    mkdirSync(dir, { recursive: true });
    writeFileSync(file, [HEADER, ...rows].join('\n') + '\n');
  }
  return file;
}
