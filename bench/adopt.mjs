// npm run bench:adopt [-- --ids 100000] [-- --sheet 400x600]
// Taking over an earlier download: N gbifIDs of herbarium sheets on disk in
// herbdl's layout (each its own file), a ledger that has them pending, and
// `herbdl adopt` timed (whole process: start-up, walk, checks, ledger),
// beside the validation ceiling measured in the same run: the same decode
// of the same sheets on all cores with nothing else (bench/decode-ceiling.mjs).
// Then --trust-jpeg, the marker walk, beside its own ceiling.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bin, fmt, pathFor, removeSqlite, timed } from './harness.mjs';
import { sharedTree, sheetTree, treeListing } from './sheets.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const { ids, sheet, dir, tree, firstId: FIRST_ID } = sharedTree(here);

await sheetTree(tree, ids, sheet, FIRST_ID);

/** A fresh ledger holding the N gbifIDs, pending. */
function ledger(name) {
  const db = join(dir, `${name}.db`);
  removeSqlite(db);
  const file = treeListing({ ids, dir, firstId: FIRST_ID });
  const r = spawnSync(process.execPath, [bin, 'ingest', file, '--db', db, '--no-progress'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  return db;
}

function ceiling(check) {
  const r = spawnSync(process.execPath, [join(here, 'decode-ceiling.mjs'), sheet, String(Math.min(ids, 20_000)), check], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  return JSON.parse(r.stdout.trim());
}

function adopt(extra) {
  const db = ledger('adopt');
  // Read once so both sides start from a warm page cache (the ceiling decodes from memory).
  spawnSync('sh', ['-c', `find '${tree}' -type f -name '*.jpg' -print0 | xargs -0 cat > /dev/null`]);
  const t = timed(process.execPath, [bin, 'adopt', tree, '--db', db, '--json', '--no-progress', ...extra]);
  const summary = JSON.parse(t.stdout.trim().split('\n').pop());
  if (summary.adopted !== ids) throw new Error(`adopted ${summary.adopted} of ${ids}`);
  return { ...t, rate: ids / t.seconds };
}

console.log(`machine: ${cpus().length} x ${cpus()[0]?.model.trim()}, ${Math.round(totalmem() / 2 ** 30)} GiB; node ${process.version}`);
console.log(`${fmt(ids)} gbifIDs of ${sheet} sheets (${fmt(readFileSync(join(tree, pathFor(FIRST_ID))).length / 1024)} KiB each) in herbdl's layout`);
for (const [label, check, extra] of [['decode (default)', 'decode', []], ['--trust-jpeg', 'structure', ['--trust-jpeg']]]) {
  const base = ceiling(check);
  const a = adopt(extra);
  console.log(
    `${label.padEnd(17)} adopt ${fmt(a.rate)} files/s, ceiling ${fmt(base.rate)} images/s: ${fmt(a.rate / base.rate, 2)}x (target >= 0.8); peak RSS ${fmt(a.rssMb)} MB (target <= 200)`,
  );
}
