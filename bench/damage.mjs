// npm run bench:damage [-- --images N]
// What herbdl's default check catches, beside a full decode of the same
// damaged sheets, and what each costs. Sheets of 400 x 600 and 1600 x 2400
// (bench/sheets.mjs, and 400 x 600 ones without chroma subsampling) are damaged five ways in their entropy-coded data: cut
// short, one bit flipped, eight bytes changed, up to 2,000 bytes cut out (the
// end marker kept), 512 bytes zeroed. Each is checked by a full decode
// (sharp's strict default, the baseline), by a decode shrunk on load to 1/8
// alone (what herbdl did for sheets over 1024 px before 2026-12-04), and by
// herbdl's check (since 2026-12-04 every block of the scans read in JS,
// jpeg-scan.ts), many at once as in a run. Prints what each caught, how many
// verdicts differ from the full decode's, and the CPU each costs per good
// sheet: the decodes as many at once as a run decodes, the scan on one thread.
import { mkdirSync, rmSync } from 'node:fs';
import { availableParallelism, cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { createValidator } from '../dist/validate/validate-image.js';
import { scanJpeg } from '../dist/validate/jpeg-scan.js';
import { arg } from './harness.mjs';
import { sheetBodies } from './sheets.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const dir = join(here, 'out', 'damage');
const KINDS = ['cut short', 'one bit', 'eight bytes', 'bytes lost', 'zeroed'];

/** The offset where a JPEG's entropy-coded data starts (after its first SOS header). */
function scanStart(body) {
  for (let i = 2; i < body.length - 1; i++) if (body[i] === 0xff && body[i + 1] === 0xda) return i + 2 + body.readUInt16BE(i + 2);
  throw new Error('no scan');
}

/** `count` damaged copies of the bodies, the kinds in turn, from a fixed seed. */
function damaged(bodies, count) {
  let seed = 12345;
  const random = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
  return Array.from({ length: count }, (_, n) => {
    const body = bodies[n % bodies.length];
    const start = scanStart(body);
    const end = body.length - 2;
    const at = start + Math.floor(random() * (end - start));
    const kind = n % KINDS.length;
    let d = Buffer.from(body);
    if (kind === 0) d = d.subarray(0, at);
    else if (kind === 1) d[at] ^= 1 << Math.floor(random() * 8);
    else if (kind === 2) for (let k = 0; k < 8; k++) d[start + Math.floor(random() * (end - start))] = Math.floor(random() * 256);
    else if (kind === 3) d = Buffer.concat([body.subarray(0, at), body.subarray(Math.min(end, at + 1 + Math.floor(random() * 2000)))]);
    else d.fill(0, at, Math.min(end, at + 512));
    return { kind, body: d };
  });
}

const fails = (promise) => promise.then(() => false, () => true);
const checks = {
  full: (body) => fails(sharp(body).extractChannel(0).raw().toBuffer()),
  shrunk: (body) => fails(sharp(body).resize(64, 64, { fit: 'inside', withoutEnlargement: true }).raw().toBuffer()),
};

/** Good sheets decoded as a run decodes them, cores + 2 at once: sheets a second and CPU ms a sheet (all threads). */
async function decodeRate(decode, bodies, n) {
  const parallel = availableParallelism() + 2;
  for (let i = 0; i < parallel * 2; i++) await decode(bodies[i % bodies.length]);
  let next = 0;
  const started = performance.now();
  const cpu = process.cpuUsage();
  await Promise.all(Array.from({ length: parallel }, async () => {
    while (next < n) await decode(bodies[next++ % bodies.length]);
  }));
  const used = process.cpuUsage(cpu);
  return { rate: n / ((performance.now() - started) / 1000), cpuMs: (used.user + used.system) / 1000 / n };
}

/** herbdl's scan of good sheets on this thread: CPU ms a sheet. */
function scanRate(bodies, n) {
  for (let i = 0; i < 50; i++) scanJpeg(bodies[i % bodies.length]);
  const cpu = process.cpuUsage();
  for (let i = 0; i < n; i++) if (scanJpeg(bodies[i % bodies.length]).verdict !== 'whole') throw new Error('a good sheet failed the scan');
  const used = process.cpuUsage(cpu);
  return { cpuMs: (used.user + used.system) / 1000 / n };
}

sharp.cache(false);
sharp.concurrency(1);
const images = arg('images', 500);
console.log(`\nbench:damage  ${images} damaged sheets of each size, ${KINDS.length} kinds in turn`);
console.log(`machine        ${cpus().length} x ${cpus()[0]?.model.trim()}, node ${process.version}`);
const fifth = Math.max(KINDS.length, Math.round(images / 5));
for (const [sheet, n, timing, chroma] of [['400x600', images, 3000], ['1600x2400', fifth, 300], ['400x600', fifth, 1000, '4:4:4']]) {
  let bodies = await sheetBodies(sheet);
  // Without chroma subsampling libjpeg reads no rows ahead, and a full decode misses damage that shows in its last 8 rows.
  if (chroma) bodies = await Promise.all(bodies.map((b) => sharp(b).jpeg({ quality: 85, chromaSubsampling: chroma }).toBuffer()));
  const cases = damaged(bodies, n);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const validate = createValidator({ jpegQuality: 90, maxEdge: 0, check: 'decode' }, availableParallelism() + 2);
  const verdicts = { full: [], shrunk: [] };
  for (const c of cases) for (const name of ['full', 'shrunk']) verdicts[name].push(await checks[name](c.body));
  // herbdl's check many at once, good sheets among the damaged, as in a run.
  const mixed = cases.flatMap((c, i) => [{ ...c, index: i }, { kind: -1, body: bodies[i % bodies.length] }]);
  const results = await Promise.all(mixed.map((c, i) => fails(validate(join(dir, `${i}.part`), Buffer.from(c.body)))));
  verdicts.herbdl = mixed.map((c, i) => ({ c, failed: results[i] })).filter((r) => r.c.kind >= 0).map((r) => r.failed);
  const goodFailed = mixed.filter((c, i) => c.kind < 0 && results[i]).length;
  console.log(`\n${sheet} sheets${chroma ? ` (${chroma})` : ''}: ${n} damaged, ${n} good beside them`);
  for (const name of ['full', 'shrunk', 'herbdl']) {
    const caught = KINDS.map((k, kind) => `${k} ${cases.filter((c, i) => c.kind === kind && verdicts[name][i]).length}/${cases.filter((c) => c.kind === kind).length}`);
    const more = verdicts[name].filter((v, i) => v && !verdicts.full[i]).length;
    const fewer = verdicts[name].filter((v, i) => !v && verdicts.full[i]).length;
    const label = { full: 'full decode (baseline)', shrunk: 'shrunk to 1/8 alone', herbdl: 'herbdl check (scan), many at once' }[name];
    const unlike = name === 'full' ? '' : `; of the full decode's failures it passes ${fewer}, and fails ${more} it passes`;
    console.log(`  ${label.padEnd(34)} ${caught.join(', ')}${unlike}`);
  }
  console.log(`  good sheets failed by herbdl: ${goodFailed}`);
  const full = await decodeRate((b) => sharp(b).extractChannel(0).raw().toBuffer(), bodies, timing);
  const shrunk = await decodeRate((b) => sharp(b).resize(64, 64, { fit: 'inside', withoutEnlargement: true }).raw().toBuffer(), bodies, timing);
  const scan = scanRate(bodies, timing);
  const figures = (r) => `${r.cpuMs.toFixed(2)} ms`;
  console.log(`  CPU a good sheet: full decode ${figures(full)} (${availableParallelism() + 2} at once, baseline); shrunk ${figures(shrunk)} (${(shrunk.cpuMs / full.cpuMs).toFixed(2)}x); herbdl's scan ${figures(scan)} (one thread, ${(scan.cpuMs / full.cpuMs).toFixed(2)}x)`);
}
rmSync(dir, { recursive: true, force: true });
