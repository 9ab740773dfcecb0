// npm run bench:pack [-- --ids 100000]
// Packing stored sheets into webdataset shards: the tree bench:adopt and bench:verify share
// (N gbifIDs of 400 x 600 sheets, each its own file), made done by `herbdl
// adopt --trust-jpeg`, then `herbdl pack` timed as a whole process beside
// `tar -cf` of the same tree in the same run, best of two each. herbdl fsyncs
// each shard before it counts; tar does not, so `tar -cf` followed by `sync`
// of its file is timed too. Then the same as three splits, and the set carried on with nothing new,
// beside `tar -tf` of its shards.
import { spawnSync } from 'node:child_process';
import { readdirSync, rmSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bin, fmt, removeSqlite, timed } from './harness.mjs';
import { sharedTree, sheetTree, treeListing } from './sheets.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const { ids, sheet, dir, tree, firstId } = sharedTree(here);
await sheetTree(tree, ids, sheet, firstId);
const db = join(dir, 'pack.db');
removeSqlite(db);
for (const args of [['ingest', treeListing({ ids, dir, firstId })], ['adopt', tree, '--trust-jpeg']]) {
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
// Carrying the finished set on with nothing new: what it holds read from its keys files, then (a set
// packed before keys were kept) from its tars' headers; beside `tar -tf` of every shard, which is how
// one would list what a set holds by hand.
const packAgain = () => timed(process.execPath, [bin, 'pack', '--db', db, '--images', tree, '--out', shards, '--no-progress', '--json']);
const carryOn = best(packAgain);
const fromTars = best(() => {
  for (const f of readdirSync(shards).filter((f) => f.endsWith('.keys'))) rmSync(join(shards, f));
  return packAgain();
});
const listing = best(() => timed('sh', ['-c', `for f in '${shards}'/*.tar; do tar -tf "$f"; done > /dev/null`]));
for (const r of [carryOn, fromTars]) if (JSON.parse(r.stdout.trim()).written !== 0) throw new Error('a carried-on set with nothing new got shards');
// Training and evaluation splits of the same images: three sets, each pass reading the ledger's done images.
const splitOut = join(dir, 'split-shards');
const split = best(() => {
  rmSync(splitOut, { recursive: true, force: true });
  return timed(process.execPath, [bin, 'pack', '--db', db, '--images', tree, '--out', splitOut, '--split', 'val=5,test=5', '--no-progress', '--json']);
});
rmSync(splitOut, { recursive: true, force: true });
const summary = JSON.parse(pack.stdout.trim());
console.log(`machine: ${cpus().length} x ${cpus()[0]?.model.trim()}, ${Math.round(totalmem() / 2 ** 30)} GiB; node ${process.version}`);
console.log(`${fmt(summary.images)} sheets (${fmt(summary.bytes / 1e9, 2)} GB) into ${summary.shards} shards of 10,000`);
console.log(`herbdl pack     ${fmt(pack.seconds, 2)} s (${fmt(summary.images / pack.seconds)} images/s), peak RSS ${fmt(pack.rssMb)} MB`);
console.log(`tar -cf         ${fmt(tar.seconds, 2)} s: herbdl at ${fmt(tar.seconds / pack.seconds, 2)}x (target >= 0.8)`);
console.log(`tar -cf && sync ${fmt(tarSync.seconds, 2)} s: herbdl at ${fmt(tarSync.seconds / pack.seconds, 2)}x`);
console.log(`--split val=5,test=5 ${fmt(split.seconds, 2)} s, peak RSS ${fmt(split.rssMb)} MB: ${fmt(pack.seconds / split.seconds, 2)}x one set`);
console.log(`carried on, nothing new: from keys ${fmt(carryOn.seconds, 2)} s, from tar headers ${fmt(fromTars.seconds, 2)} s; tar -tf of every shard ${fmt(listing.seconds, 2)} s: ${fmt(listing.seconds / carryOn.seconds, 2)}x and ${fmt(listing.seconds / fromTars.seconds, 2)}x`);
rmSync(plain, { force: true });
rmSync(shards, { recursive: true, force: true });
