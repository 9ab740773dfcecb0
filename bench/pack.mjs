// npm run bench:pack [-- --ids 100000]
// Packing stored sheets into webdataset shards: the tree bench:adopt writes
// (N gbifIDs of 400 x 600 sheets, each its own file), made done by `herbdl
// adopt --trust-jpeg`, then `herbdl pack` timed as a whole process beside
// `tar -cf` of the same tree in the same run, best of two each. herbdl fsyncs
// each shard before it counts; tar does not, so `tar -cf` followed by `sync`
// of its file is timed too.
import { spawnSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { arg, bin, fmt, removeSqlite, timed } from './harness.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const ids = arg('ids', 100_000);
const dir = join(here, 'out', 'adopt');
const tree = join(dir, `tree-${ids}-400x600`);
if (!existsSync(join(tree, '.complete'))) {
  const r = spawnSync('npm', ['run', 'bench:adopt', '--', '--ids', String(ids)], { stdio: 'inherit' });
  if (r.status !== 0) process.exit(1);
}
const db = join(dir, 'pack.db');
removeSqlite(db);
for (const args of [['ingest', join(dir, `multimedia-${ids}.txt`)], ['adopt', tree, '--trust-jpeg']]) {
  const r = spawnSync(process.execPath, [bin, ...args, '--db', db, '--no-progress', '--json'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
}
const shards = join(dir, 'shards');
const plain = join(dir, 'plain.tar');
const best = (f) => [f(), f()].sort((a, b) => a.seconds - b.seconds)[0];
// Read once so every contender starts from a warm page cache.
spawnSync('tar', ['-cf', '/dev/null', '-C', tree, '.']);
const pack = best(() => {
  rmSync(shards, { recursive: true, force: true });
  return timed(process.execPath, [bin, 'pack', '--db', db, '--images', tree, '--out', shards, '--no-progress', '--json']);
});
const tar = best(() => {
  rmSync(plain, { force: true });
  return timed('tar', ['-cf', plain, '-C', tree, '.']);
});
const tarSync = best(() => {
  rmSync(plain, { force: true });
  return timed('sh', ['-c', `tar -cf '${plain}' -C '${tree}' . && sync '${plain}'`]);
});
const summary = JSON.parse(pack.stdout.trim());
console.log(`machine: ${cpus().length} x ${cpus()[0]?.model.trim()}, ${Math.round(totalmem() / 2 ** 30)} GiB; node ${process.version}`);
console.log(`${fmt(summary.images)} sheets (${fmt(summary.bytes / 1e9, 2)} GB) into ${summary.shards} shards of 10,000`);
console.log(`herbdl pack     ${fmt(pack.seconds, 2)} s (${fmt(summary.images / pack.seconds)} images/s), peak RSS ${fmt(pack.rssMb)} MB`);
console.log(`tar -cf         ${fmt(tar.seconds, 2)} s: herbdl at ${fmt(tar.seconds / pack.seconds, 2)}x (target >= 0.8)`);
console.log(`tar -cf && sync ${fmt(tarSync.seconds, 2)} s: herbdl at ${fmt(tarSync.seconds / pack.seconds, 2)}x`);
rmSync(plain, { force: true });
rmSync(shards, { recursive: true, force: true });
