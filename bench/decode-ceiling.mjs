// The validation ceiling: MB/s (and images/s) that herbdl's own check of
// kept JPEGs sustains on all cores with nothing else running, on the same
// sheet bodies the benchmark's server sends: the validation workers a run
// uses (validator-pool.ts), as many bodies in hand as a run's concurrency.
// bench:run measures a run's MB/s against it in the same session.
//   node bench/decode-ceiling.mjs <WxH> <images> [decode|structure]
import { mkdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createValidatorPool } from '../dist/validate/validator-pool.js';
import { CONCURRENCY } from './harness.mjs';
import { sheetBodies } from './sheets.mjs';

const [sheet, count, check = 'decode'] = process.argv.slice(2);
const dir = join(dirname(fileURLToPath(import.meta.url)), 'out', 'ceiling');
rmSync(dir, { recursive: true, force: true });
mkdirSync(dir, { recursive: true });
const bodies = await sheetBodies(sheet);
const pool = createValidatorPool({ jpegQuality: 90, maxEdge: 0, check });
let bytes = 0;
let next = 0;
const started = performance.now();
await Promise.all(
  Array.from({ length: CONCURRENCY }, async () => {
    while (next < Number(count)) {
      const i = next++;
      const body = bodies[i % bodies.length];
      bytes += body.length;
      // Like a run: the body comes in memory (a copy the worker may take) and is written once it is known to be kept.
      await pool.validate(join(dir, `${i % 256}.part`), Buffer.from(body));
    }
  }),
);
const seconds = (performance.now() - started) / 1000;
await pool.close();
rmSync(dir, { recursive: true, force: true });
console.log(JSON.stringify({ rate: Number(count) / seconds, mbs: bytes / 1e6 / seconds }));
