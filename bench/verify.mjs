// npm run bench:verify [-- --ids 100000] [-- --sheet 400x600] [-- --stat-delay-us 1000]
// Checking a stored collection: N done gbifIDs of herbarium sheets in
// herbdl's layout (the tree bench:adopt uses, a ledger that adopted it), and
// `herbdl verify` timed (whole process: start-up, ledger, files) beside what
// a user would run instead on the same tree in the same run: `find -printf
// '%s'` (a stat of every file) for sizes, and `sha256sum` on every core
// (`xargs -P`) for --hash. The page cache is warmed first for both sides.
// Then a network filesystem (NFS, Lustre, GPFS), where each stat is a round
// trip to a server: every stat held --stat-delay-us longer (1 ms) by strace's
// delay injection (needs strace), for the 10,000 sheets of one folder of the
// tree, verify beside `find` of that folder under the same delay, and beside
// verify with the thread pool it had before 2026-12-07 (libuv's default 4
// threads: bin/herbdl's setting had not taken effect).
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { arg, bin, fmt, pathFor, removeSqlite, timed } from './harness.mjs';
import { sharedTree, sheetTree, treeListing } from './sheets.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const { ids, sheet, dir, tree, firstId: FIRST_ID } = sharedTree(here);
const cores = cpus().length;

await sheetTree(tree, ids, sheet, FIRST_ID);

// A ledger with every gbifID done, each file's size and sha256 recorded: the tree adopted as it is (the marker walk: adopt is not what is measured).
const db = join(dir, `verify-${ids}-${sheet}.db`);
if (!existsSync(db)) {
  const file = treeListing({ ids, dir, firstId: FIRST_ID });
  const partial = `${db}.part`;
  removeSqlite(partial);
  for (const args of [['ingest', file, '--db', partial, '--no-progress'], ['adopt', tree, '--db', partial, '--trust-jpeg', '--no-progress']]) {
    const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(r.stderr);
  }
  spawnSync('mv', [partial, db]);
}

const shell = (script) => timed('sh', ['-c', script]);
const warm = () => spawnSync('sh', ['-c', `find '${tree}' -type f -name '*.jpg' -print0 | xargs -0 cat > /dev/null`]);
const bytes = readFileSync(join(tree, pathFor(FIRST_ID))).length * ids;

function verify(extra) {
  const t = timed(process.execPath, [bin, 'verify', '--db', db, '--out', tree, '--json', ...extra]);
  const summary = JSON.parse(t.stdout.trim().split('\n').pop());
  if (summary.files !== ids || summary.brokenIds !== 0) throw new Error(`verified ${summary.files} of ${ids}, ${summary.brokenIds} broken`);
  return t;
}

console.log(`machine: ${cores} x ${cpus()[0]?.model.trim()}, ${Math.round(totalmem() / 2 ** 30)} GiB; node ${process.version}`);
console.log(`${fmt(ids)} done gbifIDs of ${sheet} sheets (${fmt(bytes / ids / 1024)} KiB each, ${fmt(bytes / 2 ** 30, 1)} GiB) in herbdl's layout, page cache warm`);
warm();
const find = shell(`find '${tree}' -type f -name '*.jpg' -printf '%s\\n' > /dev/null`);
const sizes = verify([]);
console.log(`sizes     verify ${fmt(ids / sizes.seconds)} files/s, find -printf ${fmt(ids / find.seconds)} files/s: ${fmt(find.seconds / sizes.seconds, 2)}x; peak RSS ${fmt(sizes.rssMb)} MB`);
warm();
const sums = shell(`find '${tree}' -type f -name '*.jpg' -print0 | xargs -0 -P ${cores} -n 1000 sha256sum > /dev/null`);
const hashes = verify(['--hash']);
const mbs = (t) => fmt(bytes / 2 ** 20 / t.seconds);
console.log(`--hash    verify ${mbs(hashes)} MB/s, sha256sum on ${cores} cores ${mbs(sums)} MB/s: ${fmt(sums.seconds / hashes.seconds, 2)}x; peak RSS ${fmt(hashes.rssMb)} MB`);

const statDelayUs = arg('stat-delay-us', 1000);
if (spawnSync('sh', ['-c', 'command -v strace']).status !== 0) {
  console.log('slow stats: needs strace (apt-get install strace)');
} else {
  // The gbifIDs of the last ID's folder (<id[:3]>/<id[3:6]>/): 10,000 of them for 10-digit IDs.
  const lastId = FIRST_ID + ids - 1;
  const folderFirst = Math.max(FIRST_ID, Number(String(lastId).slice(0, 6)) * 10 ** (String(lastId).length - 6));
  const folder = join(tree, dirname(pathFor(lastId)));
  const sheets = lastId - folderFirst + 1;
  const STATS = 'statx,newfstatat,stat,lstat';
  const strace = ['-f', '-qq', '--seccomp-bpf', '-o', '/dev/null', '-e', `trace=${STATS}`, '-e', `inject=${STATS}:delay_exit=${statDelayUs}`];
  const slowVerify = (pool) => {
    const t = timed('strace', [...strace, process.execPath, bin, 'verify', '--db', db, '--out', tree, '--after', String(folderFirst - 1), '--json'], pool ? { ...process.env, UV_THREADPOOL_SIZE: String(pool) } : process.env);
    const summary = JSON.parse(t.stdout.trim().split('\n').pop());
    if (summary.files !== sheets || summary.brokenIds !== 0) throw new Error(`verified ${summary.files} of ${sheets}, ${summary.brokenIds} broken`);
    return t;
  };
  const slowFind = timed('strace', [...strace, 'find', folder, '-type', 'f', '-name', '*.jpg', '-printf', '%s\n']);
  const before = slowVerify(4);
  const now = slowVerify();
  const rate = (t) => `${fmt(sheets / t.seconds)} files/s`;
  console.log(
    `slow stats (+${fmt(statDelayUs / 1000, 1)} ms each, ${fmt(sheets)} files): verify ${rate(now)}, find -printf ${rate(slowFind)}: ${fmt(slowFind.seconds / now.seconds, 2)}x; verify with 4 pool threads, as before, ${rate(before)}: ${fmt(before.seconds / now.seconds, 2)}x`,
  );
}
