/**
 * Per-width derivatives: `run --derive` publishes them with each gbifID, all
 * or nothing, from the validation decode; `herbdl derive` adds the widths
 * stored gbifIDs lack, resumably (kill -9 included); `status` counts them;
 * `pack --width` packs them. On SQLite and PostgreSQL.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { herbdl, herbdlAsync, herbdlJson, spawnHerbdl, tempDir } from './helpers/cli.js';
import { imageServers } from './helpers/image-server.js';
import { heldByAnother } from './helpers/pg-run.js';
import { freshDatabase, query } from './helpers/postgres.js';
import { doneFiles, treeFiles, workspace } from './helpers/run.js';
import { writeMultimedia } from './helpers/multimedia.js';

const rel = (id: number, nn: number) => `${String(id).slice(0, 3)}/${String(id).slice(3, 6)}/${id}-${String(nn).padStart(2, '0')}.jpg`;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const size = async (path: string) => {
  const m = await sharp(path).metadata();
  return { width: m.width as number, height: m.height as number, orientation: m.orientation };
};
const sheet = (width: number, height: number, seed = 0) =>
  sharp({ create: { width, height, channels: 3, background: { r: 30 + seed * 20, g: 120, b: 90 } } })
    .composite([{ input: { create: { width: Math.round(width / 3), height: Math.round(height / 4), channels: 3, background: { r: 250, g: 240, b: 10 } } }, left: 5, top: 5 }])
    .jpeg({ quality: 85 })
    .toBuffer();
/** Derivative files under `out`, relative to it. */
const derivatives = (out: string, width: number) => treeFiles(join(out, `w${width}`)).filter((f) => !f.startsWith('.herbdl'));
const originals = (out: string) => treeFiles(out).filter((f) => !f.startsWith('.herbdl') && !/^w\d+\//.test(f));

describe('herbdl run --derive', async () => {
  const [a, b] = await imageServers(2, 57);
  const dir = tempDir();
  const large = await sheet(900, 1400);
  const small = await sheet(120, 80, 1);
  const png = await sharp({ create: { width: 700, height: 500, channels: 4, background: { r: 10, g: 20, b: 200, alpha: 1 } } }).png().toBuffer();
  // A camera JPEG stored 1000 wide, 600 high, displayed turned a quarter (EXIF orientation 6): 600 x 1000 as seen.
  const turned = await sharp({ create: { width: 1000, height: 600, channels: 3, background: { r: 200, g: 20, b: 20 } } }).withMetadata({ orientation: 6 }).jpeg().toBuffer();
  a!.route('/large.jpg', { kind: 'image', body: large });
  a!.route('/small.jpg', { kind: 'image', body: small });
  a!.route('/png.jpg', { kind: 'image', body: png });
  b!.route('/turned.jpg', { kind: 'image', body: turned });
  b!.route('/shared.jpg', { kind: 'image', body: await sheet(640, 960, 2) });
  b!.route('/404.jpg', { kind: 'status', status: 404 });
  const ws = workspace(dir, [
    [3100000001, `${a!.origin}/large.jpg`],
    [3100000001, `${a!.origin}/small.jpg`],
    [3100000002, `${a!.origin}/png.jpg`],
    [3100000003, `${b!.origin}/turned.jpg`],
    [3100000004, `${b!.origin}/shared.jpg`],
    [3100000005, `${b!.origin}/shared.jpg`],
    [3100000006, `${a!.origin}/large.jpg`],
    [3100000006, `${b!.origin}/404.jpg`],
  ]);
  const run = await ws.run(['--derive', '300,100']);

  it('publishes a derivative per width beside every file of every done gbifID, and none for a failed one', () => {
    expect(run.json).toMatchObject({ idsDone: 5, idsFailed: 1 });
    const want = doneFiles(ws);
    expect(originals(ws.out)).toEqual(want);
    expect(derivatives(ws.out, 100)).toEqual(want);
    expect(derivatives(ws.out, 300)).toEqual(want);
    expect(want.some((f) => f.includes('3100000006'))).toBe(false);
  });

  it('makes the longer edge at most the width, keeps the proportions, and never upscales', async () => {
    expect(await size(join(ws.out, 'w300', rel(3100000001, 0)))).toMatchObject({ width: 193, height: 300 });
    expect(await size(join(ws.out, 'w100', rel(3100000001, 0)))).toMatchObject({ width: 64, height: 100 });
    // 120 x 80 fits in 300: the stored file itself, linked, not re-encoded.
    const original = join(ws.out, rel(3100000001, 1));
    expect(readFileSync(join(ws.out, 'w300', rel(3100000001, 1))).equals(readFileSync(original))).toBe(true);
    expect(statSync(join(ws.out, 'w300', rel(3100000001, 1))).ino).toBe(statSync(original).ino);
    expect(await size(join(ws.out, 'w100', rel(3100000001, 1)))).toMatchObject({ width: 100, height: 67 });
  });

  it('derives a converted image from what is stored, and turns an EXIF-oriented one upright', async () => {
    expect(await size(join(ws.out, 'w300', rel(3100000002, 0)))).toMatchObject({ width: 300, height: 214 });
    const upright = await size(join(ws.out, 'w300', rel(3100000003, 0)));
    expect(upright).toMatchObject({ width: 180, height: 300 });
    expect(upright.orientation ?? 1).toBe(1);
  });

  it('gives gbifIDs sharing one URL the same derivatives (linked from the one fetch)', () => {
    expect(readFileSync(join(ws.out, 'w100', rel(3100000004, 0))).equals(readFileSync(join(ws.out, 'w100', rel(3100000005, 0))))).toBe(true);
    expect(b!.count('/shared.jpg')).toBe(1);
  });

  it('counts the gbifIDs that have each width in status', () => {
    expect(ws.status()).toMatchObject({ derivatives: [{ width: 100, ids: 5 }, { width: 300, ids: 5 }] });
    const text = herbdl(['status', '--db', ws.db]);
    expect(text.stdout).toContain('derived   w100 5 gbifIDs  w300 5 gbifIDs');
  });

  it('herbdl derive adds only the widths a gbifID lacks, and a second one finds nothing to do', async () => {
    const before = statSync(join(ws.out, 'w100', rel(3100000001, 0)));
    const first = herbdlJson<{ derived: number; files: number; due: number }>(['derive', '100,200', '--db', ws.db, '--out', ws.out]);
    expect(first).toMatchObject({ due: 5, derived: 5, files: 6 });
    expect(derivatives(ws.out, 200)).toEqual(doneFiles(ws));
    const after = statSync(join(ws.out, 'w100', rel(3100000001, 0)));
    expect([after.ino, after.mtimeMs]).toEqual([before.ino, before.mtimeMs]);
    expect(herbdlJson(['derive', '100,200,300', '--db', ws.db, '--out', ws.out])).toMatchObject({ due: 0, derived: 0, files: 0 });
    expect(ws.status()).toMatchObject({ derivatives: [{ width: 100, ids: 5 }, { width: 200, ids: 5 }, { width: 300, ids: 5 }] });
  });

  it('pack --width packs the derivatives, each .json describing the packed file', () => {
    const shards = join(dir, 'shards-w100');
    expect(herbdlJson(['pack', '--db', ws.db, '--images', ws.out, '--out', shards, '--width', '100'])).toMatchObject({ images: 6 });
    const tarFile = join(shards, 'herbdl-000000.tar');
    const names = spawnSync('tar', ['-tf', tarFile]).stdout.toString().trim().split('\n');
    expect(names).toHaveLength(12);
    const body = spawnSync('tar', ['-xOf', tarFile, '3100000001-00.jpg'], { maxBuffer: 1 << 24 }).stdout;
    expect(body.equals(readFileSync(join(ws.out, 'w100', rel(3100000001, 0))))).toBe(true);
    const meta = JSON.parse(spawnSync('tar', ['-xOf', tarFile, '3100000001-00.json']).stdout.toString()) as Record<string, unknown>;
    expect(meta).toMatchObject({ gbifID: 3100000001, NN: 0, width: 64, height: 100, bytes: body.length, sha256: sha(body), url: `${a!.origin}/large.jpg` });
    const index = JSON.parse(readFileSync(join(shards, 'index.json'), 'utf8')) as { width: number; images: number };
    expect(index).toMatchObject({ width: 100, images: 6 });
  });

  it('pack refuses a width no gbifID has, and a folder of another width, in one line', () => {
    const none = herbdl(['pack', '--db', ws.db, '--images', ws.out, '--out', join(dir, 'shards-w50'), '--width', '50']);
    expect(none.status).toBe(2);
    expect(none.stderr.trim()).toBe('herbdl: --width 50: no gbifID has derivatives of that width (the ledger has 100, 200, 300); make them with herbdl derive 50');
    const mixed = herbdl(['pack', '--db', ws.db, '--images', ws.out, '--out', join(dir, 'shards-w100'), '--width', '300']);
    expect(mixed.status).toBe(2);
    expect(mixed.stderr).toMatch(/holds shards of the w100 derivatives, not of the w300 derivatives: pack into another folder\n$/);
  });

  it('a gbifID reopened by a newer export and published again without --derive loses its old derivatives, files and counts', async () => {
    a!.route('/added.jpg', { kind: 'image', body: await sheet(500, 700, 3) });
    herbdlJson(['ingest', writeMultimedia(join(dir, 'more.txt'), [[3100000002, `${a!.origin}/png.jpg`], [3100000002, `${a!.origin}/added.jpg`]]), '--db', ws.db]);
    const again = await ws.run();
    expect(again.json).toMatchObject({ idsDone: 1 });
    expect(originals(ws.out)).toEqual(doneFiles(ws));
    for (const w of [100, 200, 300]) expect(derivatives(ws.out, w)).toEqual(doneFiles(ws).filter((f) => !f.includes('3100000002')));
    expect(ws.status()).toMatchObject({ derivatives: [{ width: 100, ids: 4 }, { width: 200, ids: 4 }, { width: 300, ids: 4 }] });
    expect(herbdlJson(['derive', '100', '--db', ws.db, '--out', ws.out])).toMatchObject({ derived: 1, files: 2 });
    expect(derivatives(ws.out, 100)).toEqual(doneFiles(ws));
  });

  it('refuses a bad width list in one line', () => {
    const r = herbdl(['derive', '100,abc', '--db', ws.db, '--out', ws.out]);
    expect(r.status).toBe(2);
    expect(r.stderr.trim()).toBe('herbdl: <widths>: expected a whole number, got "abc"');
    const flag = herbdl(['run', '--db', ws.db, '--out', ws.out, '--derive', '8']);
    expect(flag.status).toBe(2);
    expect(flag.stderr.trim()).toBe('herbdl: --derive: must be between 16 and 16384, got 8');
  });
});

describe('herbdl derive on what an earlier run stored', async () => {
  const [server] = await imageServers(1, 59);
  const dir = tempDir();
  const ids = Array.from({ length: 40 }, (_, i) => 3200000000 + i);
  const bodies = await Promise.all([0, 1, 2, 3].map((s) => sheet(1200 + s * 10, 1700, s)));
  ids.forEach((id, i) => server!.route(`/${id}.jpg`, { kind: 'image', body: bodies[i % 4] }));
  const ws = workspace(dir, ids.map((id) => [id, `${server!.origin}/${id}.jpg`] as const));
  await ws.run();

  it('leaves out a gbifID whose stored file is gone, and derives the others', () => {
    const gone = join(ws.out, rel(ids[3]!, 0));
    const kept = readFileSync(gone);
    rmSync(gone);
    const r = herbdlJson<{ derived: number; missing: number }>(['derive', '256', '--db', ws.db, '--out', ws.out]);
    expect(r).toMatchObject({ derived: 39, missing: 1 });
    expect(derivatives(ws.out, 256)).toEqual(doneFiles(ws).filter((f) => !f.includes(String(ids[3]))));
    // Said in words, with what to do about it.
    const said = herbdl(['derive', '256', '--db', ws.db, '--out', ws.out]).stdout;
    expect(said).toContain('missing   1 gbifIDs with a stored file gone from the tree: no derivatives');
    expect(said).toContain('herbdl verify --repair makes such gbifIDs pending, for the next run to fetch their files again');
    // Put back, the next derive makes what it lacks.
    writeFileSync(gone, kept);
    expect(herbdlJson(['derive', '256', '--db', ws.db, '--out', ws.out])).toMatchObject({ derived: 1, missing: 0 });
    expect(derivatives(ws.out, 256)).toEqual(doneFiles(ws));
  });

  it('killed with -9 and run again, leaves every recorded derivative with its files and none half-published', async () => {
    let killed = false;
    for (let round = 0; round < 3 && !killed; round++) {
      rmSync(join(ws.out, 'w512'), { recursive: true, force: true });
      const child = spawnHerbdl(['derive', '512', '--db', ws.db, '--out', ws.out, '--json']);
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      const deadline = Date.now() + 30_000;
      while (Date.now() < deadline && derivatives(ws.out, 512).length < 4 && child.exitCode === null) await new Promise((r) => setTimeout(r, 5));
      killed = child.exitCode === null;
      child.kill('SIGKILL');
      await exited;
      if (!killed) {
        // It finished first: forget what it recorded and try again.
        const db = new (await import('better-sqlite3')).default(ws.db);
        db.exec("DELETE FROM derivatives WHERE width = 512; DELETE FROM totals WHERE name = 'derived_w512'");
        db.close();
      }
    }
    expect(killed).toBe(true);
    // Whatever the ledger recorded before the kill has every file; the rest is undone by the next derive.
    const db = new (await import('better-sqlite3')).default(ws.db, { readonly: true });
    const recorded = db.prepare('SELECT gbif_id FROM derivatives WHERE width = 512').pluck().all() as number[];
    db.close();
    const onDisk = new Set(derivatives(ws.out, 512));
    for (const id of recorded) expect(onDisk.has(rel(id, 0))).toBe(true);
    const again = await herbdlAsync(['derive', '512', '--db', ws.db, '--out', ws.out, '--json']);
    expect(again.status).toBe(0);
    expect(derivatives(ws.out, 512)).toEqual(doneFiles(ws));
    expect(ws.status()).toMatchObject({ derivatives: expect.arrayContaining([{ width: 512, ids: 40 }]) });
    expect(readdirSync(join(ws.out, '.herbdl-tmp'))).toEqual([]);
  });
});

describe('derivatives on a PostgreSQL ledger', async () => {
  const [server] = await imageServers(1, 61);
  const dir = tempDir();
  const db = await freshDatabase('derive');
  const out = join(dir, 'images');
  const body = await sheet(800, 1100);
  const ids = Array.from({ length: 12 }, (_, i) => 3300000000 + i);
  ids.forEach((id) => server!.route(`/${id}.jpg`, { kind: 'image', body }));
  herbdlJson(['ingest', writeMultimedia(join(dir, 'mm.txt'), ids.map((id) => [id, `${server!.origin}/${id}.jpg`] as const)), '--db', db]);

  it('run --derive and herbdl derive record and count the widths as on SQLite', async () => {
    const r = await herbdlAsync(['run', '--db', db, '--out', out, '--allow-private-network', '--derive', '128', '--json']);
    expect(r.status).toBe(0);
    expect(derivatives(out, 128)).toEqual(ids.map((id) => rel(id, 0)));
    expect(herbdlJson(['derive', '128,400', '--db', db, '--out', out])).toMatchObject({ due: 12, derived: 12, files: 12 });
    expect(derivatives(out, 400)).toEqual(ids.map((id) => rel(id, 0)));
    expect(herbdlJson(['status', '--db', db])).toMatchObject({ derivatives: [{ width: 128, ids: 12 }, { width: 400, ids: 12 }] });
    // derive held each gbifID while it read its files (so no worker republished it meanwhile), and let every one go.
    expect(await query(db, 'SELECT count(*)::int AS n FROM ids WHERE worker_id IS NOT NULL')).toEqual([{ n: 0 }]);
    rmSync(join(out, rel(ids[0]!, 0)));
    expect(herbdlJson(['derive', '64', '--db', db, '--out', out])).toMatchObject({ derived: 11, missing: 1 });
    expect(await query(db, 'SELECT count(*)::int AS n FROM ids WHERE worker_id IS NOT NULL')).toEqual([{ n: 0 }]);
    expect(existsSync(join(out, '.herbdl-tmp'))).toBe(true);
    expect(readdirSync(join(out, '.herbdl-tmp'))).toEqual([]);
  });

  it('gives the widths to done gbifIDs a worker killed with -9 held, once its lease ends, and says it waits for them', async () => {
    await heldByAnother(db, [ids[3]!, ids[7]!], 4000);
    const r = await herbdlAsync(['derive', '96', '--db', db, '--out', out, '--json']);
    expect(r.status).toBe(0);
    // Before, the two were passed over: 9 derived, and nothing said. ids[0]'s file is gone (above).
    expect(JSON.parse(r.stdout)).toMatchObject({ due: 12, derived: 11, missing: 1 });
    expect(r.stderr).toBe('herbdl: 2 done gbifIDs are held by other workers (one stopped with -9 holds its own until its lease ends): waiting to take them\n');
    expect(derivatives(out, 96)).toEqual(ids.slice(1).map((id) => rel(id, 0)));
    expect(await query(db, 'SELECT count(*)::int AS n FROM ids WHERE worker_id IS NOT NULL')).toEqual([{ n: 0 }]);
  });
});
