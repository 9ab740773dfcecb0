/**
 * herbdl verify: a done gbifID's files are looked for in the tree and
 * compared with what the ledger recorded (size; with --hash, sha256). The
 * tree loses files the ledger cannot see go (a copy cut short, a disk that
 * failed, a folder deleted by hand): verify says so in one line and exit 5,
 * and --repair makes those gbifIDs pending, damaged files moved aside, so the
 * next run fetches exactly what was lost. On SQLite and PostgreSQL.
 */
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { BIN, commandAsync, FIXTURES, herbdl, herbdlAsync, herbdlJson, spawnHerbdl, tempDir } from './helpers/cli.js';
import { imageServers, sampleJpeg } from './helpers/image-server.js';
import { expectConsistentPgTree, heldByAnother, pgWorkspace, until } from './helpers/pg-run.js';
import { freshDatabase, query } from './helpers/postgres.js';
import { writeMultimedia } from './helpers/multimedia.js';
import { expectConsistentTree, treePath, workspace } from './helpers/run.js';

interface VerifyJson {
  ids: number;
  files: number;
  missing: number;
  damaged: number;
  brokenIds: number;
  reopened: number;
  movedAside: number;
}

/** Changes one byte in the middle of a file, its size kept (what bit rot or a bad copy does). */
function flipByte(path: string): void {
  const at = Math.floor(readFileSync(path).length / 2);
  const fd = openSync(path, 'r+');
  writeSync(fd, Buffer.from([readFileSync(path)[at]! ^ 0xff]), 0, 1, at);
  closeSync(fd);
}

function cutShort(path: string): void {
  truncateSync(path, Math.floor(readFileSync(path).length / 2));
}

const verifyJson = (args: string[]) => verified(herbdl(['verify', '--json', ...args]));
/** As verifyJson, without blocking this process: for a verify that waits on what a server in this process answers. */
const verifyJsonAsync = async (args: string[]) => verified(await herbdlAsync(['verify', '--json', ...args]));
const verified = (r: { status: number | null; stdout: string; stderr: string }) =>
  ({ status: r.status, stderr: r.stderr, json: JSON.parse(r.stdout.trim().split('\n').pop() as string) as VerifyJson, stdout: r.stdout });

/** A tree under <dir>/images of one sample JPEG per gbifID, its ledger made done by adopt (no host asked). */
async function adoptedTree(dir: string, db: string, ids: readonly number[]): Promise<void> {
  const images = join(dir, 'images');
  const body = await sampleJpeg();
  for (const id of ids) {
    mkdirSync(dirname(join(images, treePath(id, 0))), { recursive: true });
    writeFileSync(join(images, treePath(id, 0)), body);
  }
  herbdlJson(['ingest', writeMultimedia(join(dir, 'm.txt'), ids.map((id) => [id, `https://verify.example/${id}.jpg`] as const)), '--db', db]);
  herbdlJson(['adopt', images, '--db', db, '--trust-jpeg']);
}

describe('herbdl verify', async () => {
  const [a, manifests, images] = await imageServers(3, 145);
  images!.imageApi();
  const manifest = readFileSync(join(FIXTURES, 'iiif', 'herbarium.manifest.v2.json'), 'utf8').replaceAll('{{images}}', images!.origin);
  const v2 = manifests!.route('/iiif/herbarium/manifest.v2.json', { kind: 'json', body: manifest });
  const url = (name: string) => a!.route(`/${name}.jpg`, { kind: 'image' });
  const rows: [number, string][] = [
    [8100001, url('v1')],
    [8100001, url('v2')],
    [8100002, url('v3')],
    [8100003, url('v4')],
    [8100004, v2],
    [8100005, url('v5')],
    [8100006, url('shared')],
    [8100007, url('shared')],
    [8100008, a!.route('/gone.jpg', { kind: 'status', status: 404 })],
  ];
  const ws = workspace(tempDir(), rows);
  const first = await ws.run();
  const db = ['--db', ws.db, '--out', ws.out];
  const file = (id: number, nn: number) => join(ws.out, treePath(id, nn));

  it('finds every file of a tree as the run left it, by size and by sha256', () => {
    expect(first.json).toMatchObject({ idsDone: 7, idsFailed: 1 });
    for (const extra of [[], ['--hash']]) {
      const r = verifyJson([...db, ...extra]);
      expect(r.status).toBe(0);
      // 8100004's manifest gave two files; the failed gbifID is not looked at.
      expect(r.json).toMatchObject({ ids: 7, files: 9, missing: 0, damaged: 0, brokenIds: 0, reopened: 0 });
    }
    expect(herbdl(['verify', '--hash', ...db]).stdout).toContain('every file is there, as recorded');
    // status says when the tree was last verified, and what that found.
    expect(ws.status()).toMatchObject({ verified: { hash: true, ids: 7, files: 9, brokenIds: 0, interrupted: false } });
    expect(herbdl(['status', '--db', ws.db]).stdout).toMatch(/^verified {2}\d{4}-\d\d-\d\dT[0-9:.]+Z, sizes and sha256: 9 files of 7 done gbifIDs, every file as recorded$/m);
  });

  it('finds a file gone, one cut short and a IIIF part gone by their sizes, a changed byte only with --hash; one line, exit 5, nothing changed', () => {
    rmSync(file(8100001, 1));
    cutShort(file(8100002, 0));
    flipByte(file(8100003, 0));
    rmSync(file(8100004, 1));
    const bySize = herbdl(['verify', '--list', ...db]);
    expect(bySize.status).toBe(5);
    expect(bySize.stdout.split('\n').filter((l) => /^(missing|damaged)\t/.test(l))).toEqual([
      `missing\t${file(8100001, 1)}\tnot in the tree`,
      expect.stringMatching(new RegExp(`^damaged\t${file(8100002, 0)}\t[0-9,]+ bytes where the ledger has [0-9,]+$`)),
      `missing\t${file(8100004, 1)}\tnot in the tree`,
    ]);
    expect(bySize.stderr.trim().split('\n')).toEqual([
      'herbdl: 3 done gbifIDs lack a file or have a damaged one (2 missing, 1 damaged); herbdl verify --repair makes them pending, for the next run to fetch',
    ]);
    const byHash = verifyJson(['--hash', '--list', ...db]);
    expect(byHash.status).toBe(5);
    expect(byHash.json).toMatchObject({ ids: 7, files: 9, missing: 2, damaged: 2, brokenIds: 4, reopened: 0, movedAside: 0 });
    expect(byHash.stdout).toMatch(new RegExp(`damaged\t${file(8100003, 0)}\tits sha256 is [0-9a-f]{64} where the ledger has [0-9a-f]{64}`));
    // Nothing was changed: the gbifIDs are done, the damaged files where they were.
    expect(ws.status()).toMatchObject({ ids: { done: 7, failed: 1, pending: 0 } });
    expect(existsSync(file(8100002, 0)) && existsSync(file(8100003, 0))).toBe(true);
  });

  it('refuses a folder that holds none of the tree, in one line, exit 2, and reopens nothing', () => {
    const r = herbdl(['verify', '--repair', '--db', ws.db, '--out', join(ws.out, 'nothing-here')]);
    expect(r.status).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain('holds none of their files');
    expect(ws.status()).toMatchObject({ ids: { done: 7, pending: 0 } });
  });

  it('--repair: those gbifIDs pending, damaged files moved aside; the next run fetches only what was lost, and the tree verifies', async () => {
    const before = (name: string) => a!.count(`/${name}.jpg`);
    const counts = { v1: before('v1'), v2: before('v2'), v3: before('v3'), v4: before('v4'), v5: before('v5') };
    const repaired = verifyJson(['--hash', '--repair', ...db]);
    expect(repaired.status).toBe(0);
    expect(repaired.json).toMatchObject({ brokenIds: 4, reopened: 4, movedAside: 2 });
    expect(ws.status()).toMatchObject({ ids: { done: 3, pending: 4, failed: 1 }, verified: { missing: 2, damaged: 2, brokenIds: 4, reopened: 4 } });
    const aside = (id: number, nn: number) => join(ws.out, '.herbdl-rejected', 'damaged', treePath(id, nn));
    expect(existsSync(aside(8100002, 0)) && existsSync(aside(8100003, 0))).toBe(true);
    expect(existsSync(file(8100002, 0)) || existsSync(file(8100003, 0))).toBe(false);
    // As a kill between verify's commit and its move would leave it: a damaged file of its size, in place. The run must not link it.
    renameSync(aside(8100003, 0), file(8100003, 0));

    const again = await ws.run();
    expect(again.json).toMatchObject({ idsDone: 4, idsFailed: 0 });
    // The lost files were fetched again, once each; the intact file of a reopened gbifID was linked from itself.
    expect(a!.count('/v2.jpg') - counts.v2).toBe(1);
    expect(a!.count('/v3.jpg') - counts.v3).toBe(1);
    expect(a!.count('/v4.jpg') - counts.v4).toBe(1);
    expect(a!.count('/v1.jpg') - counts.v1).toBe(0);
    expect(a!.count('/v5.jpg') - counts.v5).toBe(0);
    const clean = verifyJson(['--hash', ...db]);
    expect(clean.status).toBe(0);
    expect(clean.json).toMatchObject({ ids: 7, files: 9, brokenIds: 0 });
    rmSync(join(ws.out, '.herbdl-rejected'), { recursive: true });
    expectConsistentTree(ws);
  });

  it('finds a derivative gone; --repair and a run republish the gbifID from its own files, derive makes the width again', async () => {
    expect(herbdlJson(['derive', '40', ...db])).toMatchObject({ derived: 7 });
    expect(verifyJson([...db]).json).toMatchObject({ ids: 7, files: 18, brokenIds: 0 });
    const derivative = join(ws.out, 'w40', treePath(8100005, 0));
    rmSync(derivative);
    const found = herbdl(['verify', '--list', ...db]);
    expect(found.status).toBe(5);
    expect(found.stdout).toContain(`missing\t${derivative}\tnot in the tree`);
    const fetched = a!.requests.length;
    expect(verifyJson(['--repair', ...db]).json).toMatchObject({ missing: 1, reopened: 1, movedAside: 0 });
    expect((await ws.run()).json).toMatchObject({ idsDone: 1 });
    expect(a!.requests.length).toBe(fetched);
    expect(herbdlJson(['derive', '40', ...db])).toMatchObject({ derived: 1 });
    expect(existsSync(derivative)).toBe(true);
    expect(verifyJson(['--hash', ...db]).json).toMatchObject({ ids: 7, files: 18, brokenIds: 0 });
  });

  it('a stored copy cut short is not linked into a new gbifID that shares its URL: that one is fetched', async () => {
    // 8100006 and 8100007 share one URL, so one file (a hard link): both are cut short.
    cutShort(file(8100006, 0));
    const shared = rows[6]![1];
    herbdlJson(['ingest', writeMultimedia(join(ws.out, '..', 'newer.txt'), [[8100009, shared]]), '--db', ws.db]);
    const before = a!.count('/shared.jpg');
    const run = await ws.run();
    expect(run.json).toMatchObject({ idsDone: 1 });
    expect(a!.count('/shared.jpg') - before).toBe(1);
    const found = verifyJson(['--hash', '--list', ...db]);
    expect(found.json).toMatchObject({ ids: 8, brokenIds: 2, damaged: 2, missing: 0 });
    expect(found.stdout).not.toContain(treePath(8100009, 0));
  });
});

describe('herbdl verify on a shared (PostgreSQL) ledger', async () => {
  const [b] = await imageServers(1, 146);
  const rows: [number, string][] = [];
  for (let i = 0; i < 12; i++) rows.push([8200000 + i, b!.route(`/p-${i}.jpg`, { kind: 'image' })]);
  const ws = await pgWorkspace(tempDir(), 'verify', rows);
  const file = (id: number) => join(ws.out, treePath(id, 0));

  it('finds what is lost, repairs it as one more worker, and the next worker fetches it', async () => {
    const worker = ws.worker();
    expect(await worker.exited).toBe(0);
    expect(worker.json()).toMatchObject({ idsDone: 12 });
    rmSync(file(8200003));
    flipByte(file(8200007));
    const db = ['--db', ws.db, '--out', ws.out];
    const found = verifyJson(['--hash', ...db]);
    expect(found.status).toBe(5);
    expect(found.json).toMatchObject({ ids: 12, missing: 1, damaged: 1, brokenIds: 2 });
    const repaired = verifyJson(['--hash', '--repair', ...db]);
    expect(repaired.json).toMatchObject({ brokenIds: 2, reopened: 2, movedAside: 1 });
    // As a kill between verify's commit and its move would leave it: the damaged file in place, which no worker may link.
    renameSync(join(ws.out, '.herbdl-rejected', 'damaged', treePath(8200007, 0)), file(8200007));
    // Its claims ended with it.
    expect(await query(ws.db, 'SELECT count(*)::int AS n FROM ids WHERE worker_id IS NOT NULL')).toEqual([{ n: 0 }]);
    expect(herbdlJson(['status', '--db', ws.db])).toMatchObject({ ids: { done: 10, pending: 2 }, verified: { hash: true, ids: 12, brokenIds: 2, reopened: 2 } });
    const [n3, n7] = [b!.count('/p-3.jpg'), b!.count('/p-7.jpg')];
    const next = ws.worker();
    expect(await next.exited).toBe(0);
    expect(next.json()).toMatchObject({ idsDone: 2 });
    expect([b!.count('/p-3.jpg') - n3, b!.count('/p-7.jpg') - n7]).toEqual([1, 1]);
    expect(verifyJson(['--hash', ...db]).json).toMatchObject({ ids: 12, brokenIds: 0 });
    rmSync(join(ws.out, '.herbdl-rejected'), { recursive: true });
    await expectConsistentPgTree(ws);
  });

  it('waits for the gbifIDs a live recheck holds, and judges them once it lets go: a file being replaced is never judged, nor one left out', async () => {
    // Every answer 4 s late: the recheck holds its claims (done gbifIDs) that long.
    for (let i = 0; i < 12; i++) b!.route(`/p-${i}.jpg`, { kind: 'image', delayMs: 4000 });
    const recheck = spawnHerbdl(['recheck', '--all', '--db', ws.db, '--out', ws.out, '--allow-private-network', '--per-host', '4', '--json']);
    setTimeout(() => recheck.kill('SIGKILL'), 60_000).unref();
    const ended = new Promise<number | null>((resolve) => recheck.once('exit', resolve));
    const held = async () => (await query<{ n: number }>(ws.db, 'SELECT count(*)::int AS n FROM ids WHERE worker_id IS NOT NULL'))[0]!.n;
    await until(async () => (await held()) > 0, 20_000, 'the recheck to claim');
    // A file of a held gbifID, changed: the recheck confirms the host's version by a 304 and leaves the file as it is.
    const [heldId] = (await query<{ id: string }>(ws.db, 'SELECT gbif_id::text AS id FROM ids WHERE worker_id IS NOT NULL ORDER BY gbif_id LIMIT 1')).map((r) => Number(r.id));
    flipByte(file(heldId!));
    const r = await verifyJsonAsync(['--hash', '--list', '--db', ws.db, '--out', ws.out]);
    // Before, it passed them over and found the tree whole (exit 0).
    expect(r.status).toBe(5);
    expect(r.json).toMatchObject({ ids: 12, brokenIds: 1, damaged: 1 });
    expect(r.stdout).toContain(`damaged\t${file(heldId!)}\t`);
    expect(r.stderr).toMatch(/^herbdl: (\d+ done gbifIDs are|1 done gbifID is) held by other workers \(one stopped with -9 holds its own until its lease ends\): waiting to take them$/m);
    expect(await ended).toBe(0);
  });

  it('comes back for a done gbifID a worker killed with -9 held, once its lease ends: what was lost there is found and repaired', async () => {
    const db = ['--db', ws.db, '--out', ws.out];
    expect(verifyJson(['--hash', '--repair', ...db]).json).toMatchObject({ brokenIds: 1, reopened: 1 });
    expect(await ws.worker().exited).toBe(0);
    await heldByAnother(ws.db, [8200002, 8200009], 4000);
    rmSync(file(8200009));
    const r = verifyJson(['--repair', '--list', ...db]);
    expect(r.status).toBe(0);
    // Before, both were passed over: 10 gbifIDs checked, nothing missing.
    expect(r.json).toMatchObject({ ids: 12, missing: 1, brokenIds: 1, reopened: 1 });
    expect(r.stdout).toContain(`missing\t${file(8200009)}\t`);
    expect(r.stderr).toContain('herbdl: 2 done gbifIDs are held by other workers');
    expect(herbdlJson(['status', '--db', ws.db])).toMatchObject({ ids: { done: 11, pending: 1 } });
    expect(await query(ws.db, 'SELECT count(*)::int AS n FROM ids WHERE worker_id IS NOT NULL')).toEqual([{ n: 0 }]);
    expect(await ws.worker().exited).toBe(0);
    rmSync(join(ws.out, '.herbdl-rejected'), { recursive: true });
    await expectConsistentPgTree(ws);
  });
});

describe('herbdl verify --repair on a shared ledger, over many batches', async () => {
  const dir = tempDir();
  const images = join(dir, 'images');
  const db = await freshDatabase('verify_many');
  // Over 256 gbifIDs (a batch): two batches are checked at once, each recording what it reopened.
  const ids = Array.from({ length: 1200 }, (_, i) => 8400000 + i);
  await adoptedTree(dir, db, ids);

  it('counts every gbifID it reopened, as the ledger and status do', () => {
    const lost = ids.filter((_, i) => i % 2 === 0);
    for (const id of lost) rmSync(join(images, treePath(id, 0)));
    const r = verifyJson(['--repair', '--db', db, '--out', images]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.json).toMatchObject({ ids: ids.length, missing: lost.length, brokenIds: lost.length, reopened: lost.length });
    expect(herbdlJson(['status', '--db', db])).toMatchObject({ ids: { done: ids.length - lost.length, pending: lost.length }, verified: { brokenIds: lost.length, reopened: lost.length } });
  });
});

describe('herbdl verify, stopped and carried on', async () => {
  const dir = tempDir();
  const images = join(dir, 'images');
  const db = join(dir, 'ledger.db');
  const ids = Array.from({ length: 20_000 }, (_, i) => 8300000 + i);
  await adoptedTree(dir, db, ids);

  it('Ctrl-C stops after the batches under way (exit 130), says up to which gbifID it checked, and --after carries on from there', async () => {
    // Every file gone: a line each. Ctrl-C comes with the first, when a batch or two of the 79 have been checked.
    for (const id of ids) rmSync(join(images, treePath(id, 0)));
    const child = spawnHerbdl(['verify', '--list', '--db', db, '--out', images]);
    setTimeout(() => child.kill('SIGKILL'), 60_000).unref();
    let stdout = '';
    child.stdout?.on('data', (c: Buffer) => {
      if (stdout === '') child.kill('SIGINT');
      stdout += c.toString();
    });
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect(code).toBe(130);
    const stopped = /herbdl verify --after (\d+) carries on/.exec(stdout);
    expect(stopped).not.toBeNull();
    const through = Number(stopped![1]);
    const first = stdout.split('\n').filter((l) => l.startsWith('missing\t'));
    expect(through).toBeLessThan(ids[ids.length - 1]!);
    expect(first).toHaveLength(through - ids[0]! + 1);
    expect(herbdlJson(['status', '--db', db])).toMatchObject({ verified: { interrupted: true, checkedThrough: through } });
    const rest = verifyJson(['--after', String(through), '--db', db, '--out', images]);
    expect(rest.status).toBe(5);
    expect(rest.json).toMatchObject({ ids: ids[ids.length - 1]! - through, missing: ids[ids.length - 1]! - through, interrupted: false });
  });
});

describe('herbdl verify of a tree mounted read-only', async () => {
  const [host] = await imageServers(1, 148);
  const dir = tempDir();
  const ws = workspace(dir, [[8300001, host!.route('/r1.jpg', { kind: 'image' })], [8300002, host!.route('/r2.jpg', { kind: 'image' })]]);
  await ws.run();
  const mount = join(dir, 'archive');
  mkdirSync(mount);
  let calls = 0;

  /**
   * Runs CLI commands (`$CLI` is node and herbdl) with the tree bind-mounted read-only at `mount`, as an archived copy or
   * a dataset on shared storage, in a mount namespace of their own (unshare: no privilege needed where user namespaces
   * are allowed), so nothing stays mounted after the test.
   */
  async function onReadOnlyTree(commands: string[]): Promise<{ status: number; stdout: string; stderr: string }[]> {
    const at = (i: number, what: string) => join(dir, `ro-${calls}-${i}.${what}`);
    const script = ['set -u', 'mount --bind "$TREE" "$MOUNT" && mount -o remount,bind,ro "$MOUNT" || exit 90', ...commands.map((c, i) => `"$NODE" "$BIN" ${c} > "${at(i, 'out')}" 2> "${at(i, 'err')}"; echo $? > "${at(i, 'status')}"`)].join('\n');
    const r = await commandAsync('unshare', ['--user', '--map-root-user', '--mount', 'sh', '-c', script], { env: { NODE: process.execPath, BIN, DB: ws.db, TREE: ws.out, MOUNT: mount }, timeoutMs: 60_000 });
    expect(r.status, r.stderr).toBe(0);
    const results = commands.map((_, i) => ({ status: Number(readFileSync(at(i, 'status'), 'utf8')), stdout: readFileSync(at(i, 'out'), 'utf8'), stderr: readFileSync(at(i, 'err'), 'utf8') }));
    calls++;
    return results;
  }

  it('checks it without writing to it; what writes into it is refused in one line, exit 2; pack and a dry run of prune read it', async () => {
    const [verified, repair, run, pack, pruneDry] = await onReadOnlyTree([
      'verify --db "$DB" --out "$MOUNT" --hash --json',
      'verify --db "$DB" --out "$MOUNT" --repair',
      'run --db "$DB" --out "$MOUNT" --allow-private-network',
      `pack --db "$DB" --images "$MOUNT" --out "${join(dir, 'shards')}" --json`,
      'prune --db "$DB" --out "$MOUNT" --dry-run --json',
    ]);
    expect(pruneDry!.status, pruneDry!.stderr).toBe(0);
    expect(verified!.status, verified!.stderr).toBe(0);
    expect(JSON.parse(verified!.stdout.trim().split('\n').pop() as string)).toMatchObject({ ids: 2, files: 2, brokenIds: 0 });
    for (const refused of [repair!, run!]) {
      expect(refused.status).toBe(2);
      expect(refused.stderr.trim().split('\n')).toEqual([expect.stringMatching(new RegExp(`^herbdl: ${mount}: the images folder cannot be written \\(EROFS\\): this command writes into it`))]);
    }
    expect(pack!.status, pack!.stderr).toBe(0);
    expect(JSON.parse(pack!.stdout)).toMatchObject({ images: 2 });
  });

  it('a gbifID a killed run left half-published there cannot be undone first: refused in one line, exit 2', async () => {
    // What a run killed between its renames and its commit leaves in the ledger: an intent naming the files.
    const ledger = new Database(ws.db);
    ledger.prepare('INSERT INTO publishing (gbif_id, paths) VALUES (?, ?)').run(8300003, JSON.stringify([join(mount, treePath(8300003, 0))]));
    ledger.close();
    const [verified] = await onReadOnlyTree(['verify --db "$DB" --out "$MOUNT"']);
    expect(verified!.status).toBe(2);
    expect(verified!.stderr.trim().split('\n')).toEqual([`herbdl: ${mount}: the images folder cannot be written (EROFS): a killed run left gbifIDs half-published in it (1), to be undone before anything is checked; run this where the folder can be written`]);
  });
});
