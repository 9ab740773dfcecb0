// The validation ceiling: MB/s (and images/s) that herbdl's own check of
// kept JPEGs sustains on all cores with nothing else running, on the same
// sheet bodies the benchmark's server sends. bench:run measures a run's MB/s
// against it in the same session.
//   node bench/decode-ceiling.mjs <WxH> <images> [decode|structure]
import { mkdirSync, rmSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createValidator } from '../dist/validate/validate-image.js';
import { sheetBodies } from './sheets.mjs';

const [sheet, count, check = 'decode'] = process.argv.slice(2);
const dir = join(dirname(fileURLToPath(import.meta.url)), 'out', 'ceiling');
rmSync(dir, { recursive: true, force: true });
mkdirSync(dir, { recursive: true });
const bodies = await sheetBodies(sheet);
// As many decodes at once as a run's validation pool allows (validator-pool.ts: two beyond the cores).
const validate = createValidator({ jpegQuality: 90, maxEdge: 0, check }, availableParallelism() + 2);
let bytes = 0;
const started = performance.now();
await Promise.all(
  Array.from({ length: Number(count) }, (_, i) => {
    const body = bodies[i % bodies.length];
    bytes += body.length;
    // Like a run: the body comes in memory and is written once it is known to be kept.
    return validate(join(dir, `${i % 256}.part`), body);
  }),
);
const seconds = (performance.now() - started) / 1000;
rmSync(dir, { recursive: true, force: true });
console.log(JSON.stringify({ rate: Number(count) / seconds, mbs: bytes / 1e6 / seconds }));
