/**
 * `herbdl adopt`: a tree made the way the earlier script made it, with
 * complete, partial, extra, misnamed, misplaced, truncated, PNG-, CMYK- and
 * HTML-as-.jpg cases; exact outcomes, nothing deleted, and a following run
 * that fetches exactly what was not adopted. Then the flat layout, and kill -9.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import type { AdoptSummary } from '../src/adopt/adopt.js';
import { herbdl, herbdlAsync, herbdlJson, spawnHerbdl, tempDir } from './helpers/cli.js';
import { imageServers } from './helpers/image-server.js';
import { readLedger, type StatusJson } from './helpers/ledger.js';
import { writeMultimedia } from './helpers/multimedia.js';
import { freshDatabase, query } from './helpers/postgres.js';
import { treeFiles, type RunJson } from './helpers/run.js';

const [server] = await imageServers(1, 94);
const url = (id: number, i: number) => `${server!.origin}/${id}/${i}.jpg`;
for (let id = 1234500001; id <= 1234500012; id++) for (let i = 0; i < 3; i++) server!.route(`/${id}/${i}.jpg`, { kind: 'image' });

/** A 400 x 600 sheet (a different one for each seed). */
async function sheet(seed: number, options: { cmyk?: boolean } = {}): Promise<Buffer> {
  const image = sharp({ create: { width: 400, height: 600, channels: 3, background: { r: seed % 256, g: (seed * 7) % 256, b: 90 } } });
  return (options.cmyk ? image.toColourspace('cmyk') : image).jpeg({ quality: 80 }).toBuffer();
}

function put(root: string, rel: string, body: Buffer | string): string {
  const path = join(root, rel);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, body);
  return path;
}

const rel = (id: number, nn: number) => `${String(id).slice(0, 3)}/${String(id).slice(3, 6)}/${id}-${String(nn).padStart(2, '0')}.jpg`;

describe('herbdl adopt: a tree in herbdl layout', async () => {
  const dir = tempDir();
  const db = join(dir, 'adopt.db');
  const tree = join(dir, 'tree');
  const images = (id: number, n: number) => Array.from({ length: n }, (_, i) => [id, url(id, i)] as const);
  herbdlJson(['ingest', '--db', db, writeMultimedia(join(dir, 'mm.txt'), [
    ...images(1234500001, 2), // complete
    ...images(1234500002, 3), // partial: two files of three
    ...images(1234500003, 1), // extra: -00 and -01
    ...images(1234500004, 1), // a PNG named .jpg
    ...images(1234500005, 1), // truncated
    ...images(1234500006, 1), // an HTML error page
    ...images(1234500007, 1), // misnamed only
    ...images(1234500008, 1), // misplaced only
    ...images(1234500009, 1), // CMYK
    ...images(1234500010, 1), // excluded
    ...images(1234500011, 1), // complete
  ])]);
  writeFileSync(join(dir, 'exclude.txt'), '1234500010\n');
  herbdlJson(['exclude', join(dir, 'exclude.txt'), '--db', db]);
  const good = await Promise.all([1, 2, 3, 4, 5].map((s) => sheet(s)));
  put(tree, rel(1234500001, 0), good[0]!);
  put(tree, rel(1234500001, 1), good[1]!);
  put(tree, rel(1234500002, 0), good[2]!);
  put(tree, rel(1234500002, 1), good[3]!);
  put(tree, rel(1234500003, 0), good[4]!);
  put(tree, rel(1234500003, 1), good[0]!);
  put(tree, rel(1234500004, 0), await sharp(good[0]!).png().toBuffer());
  put(tree, rel(1234500005, 0), good[1]!.subarray(0, Math.floor(good[1]!.length / 2)));
  put(tree, rel(1234500006, 0), '<html><body>503 Service Unavailable</body></html>');
  put(tree, '123/450/1234500007-0.jpg', good[2]!);
  put(tree, '123/450/1234500007.jpg', good[2]!);
  put(tree, '123/999/1234500008-00.jpg', good[3]!);
  put(tree, rel(1234500009, 0), await sheet(9, { cmyk: true }));
  put(tree, rel(1234500010, 0), good[4]!);
  put(tree, rel(1234500011, 0), good[0]!);
  put(tree, rel(9999900001, 0), good[1]!); // not in the ledger
  const before = treeFiles(tree);
  const adopted = herbdlJson<AdoptSummary>(['adopt', tree, '--db', db]);

  it('adopts exactly the complete gbifIDs whose files all pass, and counts every other case', () => {
    expect(adopted).toMatchObject({
      layout: 'herbdl',
      adopted: 2,
      adoptedFiles: 3,
      partial: 1,
      extra: 1,
      rejectedIds: 4,
      rejected: { extra: 2, not_jpeg: 1, truncated: 1, not_image: 1, cmyk_jpeg: 1 },
      alreadyDone: 0,
      excluded: 1,
      notInLedger: 1,
      held: 0,
      strays: 3,
      interrupted: false,
    });
  });

  it('records each adopted file as run would: bytes, sha256, width and height, with no request made', () => {
    const rows = readLedger(db, (d) =>
      d.prepare('SELECT gbif_id, file_index, bytes, sha256, width, height, received_format FROM images WHERE state = 1 ORDER BY gbif_id, image_index').all(),
    ) as { gbif_id: number; file_index: number; bytes: number; sha256: string; width: number; height: number }[];
    expect(rows.map((r) => [r.gbif_id, r.file_index])).toEqual([[1234500001, 0], [1234500001, 1], [1234500011, 0]]);
    for (const r of rows) {
      const body = readFileSync(join(tree, rel(r.gbif_id, r.file_index)));
      expect(r).toMatchObject({ bytes: body.length, sha256: createHash('sha256').update(body).digest('hex'), width: 400, height: 600 });
    }
    expect(server!.requests).toEqual([]);
    const status = herbdlJson<StatusJson>(['status', '--db', db]);
    expect(status.ids).toEqual({ total: 11, pending: 8, done: 2, failed: 0, excluded: 1, removed: 0 });
  });

  it('moves rejected and extra files aside by reason, deletes nothing, and leaves strays where they are', () => {
    const after = treeFiles(tree);
    const aside = after.filter((f) => f.startsWith('.herbdl-rejected/'));
    expect(aside).toEqual([
      `.herbdl-rejected/cmyk_jpeg/${rel(1234500009, 0)}`,
      `.herbdl-rejected/extra/${rel(1234500003, 0)}`,
      `.herbdl-rejected/extra/${rel(1234500003, 1)}`,
      `.herbdl-rejected/not_image/${rel(1234500006, 0)}`,
      `.herbdl-rejected/not_jpeg/${rel(1234500004, 0)}`,
      `.herbdl-rejected/truncated/${rel(1234500005, 0)}`,
    ]);
    expect(after.filter((f) => !f.startsWith('.herbdl')).length + aside.length).toBe(before.length);
    for (const stray of ['123/450/1234500007-0.jpg', '123/450/1234500007.jpg', '123/999/1234500008-00.jpg']) expect(after).toContain(stray);
  });

  it('a second adopt changes nothing', () => {
    const again = herbdlJson<AdoptSummary>(['adopt', tree, '--db', db]);
    expect(again).toMatchObject({ adopted: 0, alreadyDone: 2, partial: 1, extra: 0, rejectedIds: 0, rejected: {}, excluded: 1, notInLedger: 1 });
  });

  it('a following run fetches exactly the images of the gbifIDs not adopted, and the tree ends exactly as the ledger says', async () => {
    const run = await herbdlAsync(['run', '--db', db, '--out', tree, '--allow-private-network', '--json']);
    expect(run.status).toBe(0);
    expect(JSON.parse(run.stdout) as RunJson).toMatchObject({ idsDone: 8, idsFailed: 0, pending: 0 });
    const asked = server!.requests.map((r) => r.path).sort();
    const expected = [
      ...[0, 1, 2].map((i) => `/1234500002/${i}.jpg`),
      ...[3, 4, 5, 6, 7, 8, 9].map((n) => `/123450000${n}/0.jpg`),
    ].sort();
    expect(asked).toEqual(expected);
    const done = readLedger(db, (d) => d.prepare('SELECT gbif_id, COALESCE(file_index, image_index) AS nn FROM images WHERE state = 1').all()) as { gbif_id: number; nn: number }[];
    const inTree = treeFiles(tree).filter((f) => !f.startsWith('.herbdl') && /^\d{3}\/\d{3}\/\d+-\d{2}\.jpg$/.test(f));
    // Done sets, and what adopt left alone: the excluded gbifID's file, the misplaced one, the one the ledger lacks.
    const leftAlone = [rel(1234500010, 0), '123/999/1234500008-00.jpg', rel(9999900001, 0)];
    expect(inTree).toEqual([...done.map((r) => rel(r.gbif_id, r.nn)), ...leftAlone].sort());
    // The adopted files were kept as they were.
    expect(readFileSync(join(tree, rel(1234500001, 1)))).toEqual(good[1]);
  });
});

describe('herbdl adopt --layout flat: the older scripts\' <gbifID>.jpg', async () => {
  const dir = tempDir();
  const db = join(dir, 'flat.db');
  const flat = join(dir, 'flat');
  const out = join(dir, 'images');
  herbdlJson(['ingest', '--db', db, writeMultimedia(join(dir, 'mm.txt'), [
    [1234500011, url(1234500011, 0)],
    [1234500012, url(1234500012, 0)],
    [1234500012, url(1234500012, 1)],
    [1234500001, url(1234500001, 0)],
  ])]);
  const one = await sheet(11);
  const first = await sheet(12);
  put(flat, '1234500011.jpg', one);
  put(flat, '1234500012.jpg', first);
  put(flat, '1234500001.jpg', '<html>Not Found</html>');
  put(flat, 'notes.txt', 'a file the older script left');
  const adopted = herbdlJson<AdoptSummary>(['adopt', flat, '--layout', 'flat', '--out', out, '--db', db]);

  it('links each first image into the layout as -00, the original left alone, and counts by outcome', () => {
    expect(adopted).toMatchObject({ layout: 'flat', adopted: 1, adoptedFiles: 1, firstStored: 1, rejectedIds: 1, rejected: { not_image: 1 }, strays: 1 });
    expect(treeFiles(out).filter((f) => !f.startsWith('.herbdl'))).toEqual([rel(1234500011, 0), rel(1234500012, 0)]);
    expect(statSync(join(out, rel(1234500011, 0))).ino).toBe(statSync(join(flat, '1234500011.jpg')).ino);
    expect(existsSync(join(flat, '1234500012.jpg'))).toBe(true);
    expect(existsSync(join(flat, '.herbdl-rejected', 'not_image', '1234500001.jpg'))).toBe(true);
    expect(herbdlJson<StatusJson>(['status', '--db', db]).ids).toMatchObject({ done: 1, pending: 2 });
  });

  it('a run then fetches only the other images, and publishes each set whole', async () => {
    const started = server!.requests.length;
    const run = await herbdlAsync(['run', '--db', db, '--out', out, '--allow-private-network', '--json']);
    expect(run.status).toBe(0);
    expect(JSON.parse(run.stdout) as RunJson).toMatchObject({ idsDone: 2, pending: 0 });
    expect(server!.requests.slice(started).map((r) => r.path).sort()).toEqual(['/1234500001/0.jpg', '/1234500012/1.jpg']);
    expect(treeFiles(out)).toEqual([rel(1234500001, 0), rel(1234500011, 0), rel(1234500012, 0), rel(1234500012, 1)]);
    expect(readFileSync(join(out, rel(1234500012, 0)))).toEqual(first);
  });
});

describe('herbdl adopt: kill -9, then adopt again', async () => {
  const dir = tempDir();
  const ids = Array.from({ length: 1500 }, (_, i) => 2000000000 + i * 37);
  const rows = ids.map((id) => [id, `https://adopt.example/${id}.jpg`] as const);
  const bodies = await Promise.all([1, 2, 3].map((s) => sheet(s)));
  /** The same tree and ledger twice: one adopt killed and redone, one left alone. */
  const make = (name: string) => {
    const db = join(dir, `${name}.db`);
    const tree = join(dir, name);
    herbdlJson(['ingest', '--db', db, writeMultimedia(join(dir, `${name}.txt`), rows)]);
    ids.forEach((id, i) => {
      const path = join(tree, rel(id, 0));
      mkdirSync(dirname(path), { recursive: true });
      if (i % 50 === 7) writeFileSync(path, '<html>error</html>');
      else writeFileSync(path, bodies[i % 3]!);
    });
    return { db, tree };
  };
  const killed = make('killed');
  const whole = make('whole');

  it('ends in the same ledger and tree as an adopt that was never interrupted', async () => {
    const child = spawnHerbdl(['adopt', killed.tree, '--db', killed.db]);
    const done = () => readLedger(killed.db, (d) => d.prepare('SELECT count(*) FROM ids WHERE state = 1').pluck().get() as number);
    const deadline = Date.now() + 60_000;
    while (done() === 0 && child.exitCode === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    const partway = done();
    expect(partway).toBeGreaterThan(0);
    expect(partway).toBeLessThan(1470);
    herbdlJson(['adopt', killed.tree, '--db', killed.db]);
    herbdlJson(['adopt', whole.tree, '--db', whole.db]);
    const exported = (db: string) => herbdl(['export', '--db', db, '--state', 'all']).stdout;
    expect(exported(killed.db)).toBe(exported(whole.db));
    expect(treeFiles(killed.tree).filter((f) => !f.startsWith('.herbdl-tmp'))).toEqual(treeFiles(whole.tree).filter((f) => !f.startsWith('.herbdl-tmp')));
    expect(herbdlJson<StatusJson>(['status', '--db', killed.db]).ids).toMatchObject({ done: 1470, pending: 30 });
  });
});

describe('herbdl adopt on a PostgreSQL ledger', async () => {
  const dir = tempDir();
  const db = await freshDatabase('adopt');
  const tree = join(dir, 'tree');
  const [pgServer] = await imageServers(1, 95);
  for (let id = 3000000001; id <= 3000000004; id++) for (let i = 0; i < 2; i++) pgServer!.route(`/${id}/${i}.jpg`, { kind: 'image' });
  const at = (id: number, i: number) => `${pgServer!.origin}/${id}/${i}.jpg`;
  herbdlJson(['ingest', '--db', db, writeMultimedia(join(dir, 'mm.txt'), [
    [3000000001, at(3000000001, 0)],
    [3000000001, at(3000000001, 1)],
    [3000000002, at(3000000002, 0)],
    [3000000002, at(3000000002, 1)],
    [3000000003, at(3000000003, 0)],
    [3000000004, at(3000000004, 0)],
  ])]);
  put(tree, rel(3000000001, 0), await sheet(21));
  put(tree, rel(3000000001, 1), await sheet(22));
  put(tree, rel(3000000002, 0), await sheet(23));
  put(tree, rel(3000000003, 0), await sheet(24));
  put(tree, rel(3000000004, 0), 'Service Unavailable');
  const adopted = herbdlJson<AdoptSummary>(['adopt', tree, '--db', db, '--trust-jpeg']);

  it('adopts, rejects and reports as on SQLite, through a worker lease', async () => {
    expect(adopted).toMatchObject({ adopted: 2, adoptedFiles: 3, partial: 1, rejectedIds: 1, rejected: { not_image: 1 }, held: 0 });
    expect(herbdlJson<StatusJson>(['status', '--db', db]).ids).toEqual({ total: 4, pending: 2, done: 2, failed: 0, excluded: 0, removed: 0 });
    // The lease is handed back: nothing stays claimed by the adopt's worker.
    expect(await query(db, 'SELECT count(*)::int AS n FROM ids WHERE worker_id IS NOT NULL')).toEqual([{ n: 0 }]);
    const run = await herbdlAsync(['run', '--db', db, '--out', tree, '--allow-private-network', '--json']);
    expect(run.status).toBe(0);
    expect(pgServer!.requests.map((r) => r.path).sort()).toEqual(['/3000000002/0.jpg', '/3000000002/1.jpg', '/3000000004/0.jpg']);
    expect(herbdlJson<StatusJson>(['status', '--db', db]).ids).toMatchObject({ done: 4, pending: 0 });
  });
});
