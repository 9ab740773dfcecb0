/**
 * `herbdl pack --format webdataset`: shards read back with GNU tar (which
 * shares nothing with the writer): each image's .jpg and .json adjacent, in
 * gbifID and NN order, byte for byte the stored files; stats and an index;
 * byte-identical shards from the same ledger; a killed pack finished by the
 * next one, to the same bytes.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { herbdl, herbdlJson, spawnHerbdl, tempDir } from './helpers/cli.js';
import { collection, rel } from './helpers/collection.js';
import { writeMultimedia } from './helpers/multimedia.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

function tar(args: string[]): Buffer {
  const r = spawnSync('tar', args, { maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error(r.stderr.toString());
  return r.stdout;
}

const shardFiles = (out: string) => readdirSync(out).filter((f) => f.endsWith('.tar')).sort();
const digests = (out: string) => shardFiles(out).map((f) => [f, sha(readFileSync(join(out, f)))]);

describe('herbdl pack --format webdataset', async () => {
  const dir = tempDir();
  const small = await collection(dir, 'small', 17, (i) => 1 + (i % 2)); // 25 images
  const out = join(dir, 'shards');
  const summary = herbdlJson<{ shards: number; written: number; images: number }>(['pack', '--db', small.db, '--images', small.images, '--out', out, '--shard-size', '10']);

  it('writes gapless shards of --shard-size images, each a .jpg and its .json side by side, in gbifID and NN order', () => {
    expect(summary).toMatchObject({ shards: 3, written: 3, images: 25 });
    expect(shardFiles(out)).toEqual(['herbdl-000000.tar', 'herbdl-000001.tar', 'herbdl-000002.tar']);
    const names = shardFiles(out).flatMap((f) => tar(['-tf', join(out, f)]).toString().trim().split('\n'));
    expect(names).toHaveLength(50);
    const keys = names.filter((_, i) => i % 2 === 0).map((n) => n.replace(/\.jpg$/, ''));
    expect(names).toEqual(keys.flatMap((k) => [`${k}.jpg`, `${k}.json`]));
    const order = keys.map((k) => k.split('-').map(Number) as [number, number]);
    expect(order).toEqual([...order].sort((a, b) => a[0] - b[0] || a[1] - b[1]));
    expect(keys).not.toContain('7999999999-00');
  });

  it('holds each stored file byte for byte, with its attribution and checksum in the .json', () => {
    const shard = join(out, 'herbdl-000001.tar');
    const [first] = tar(['-tf', shard]).toString().trim().split('\n');
    const key = (first as string).replace(/\.jpg$/, '');
    const [id, nn] = key.split('-').map(Number) as [number, number];
    const body = tar(['-xOf', shard, `${key}.jpg`]);
    expect(body.equals(readFileSync(join(small.images, rel(id, nn))))).toBe(true);
    const meta = JSON.parse(tar(['-xOf', shard, `${key}.json`]).toString()) as Record<string, unknown>;
    expect(meta).toEqual({
      gbifID: id,
      NN: nn,
      url: `https://pack.example/${id}/${nn}.jpg`,
      license: 'CC0',
      rightsHolder: '',
      creator: '',
      publisher: '',
      width: expect.any(Number),
      height: 40,
      bytes: body.length,
      sha256: sha(body),
    });
  });

  it('writes stats and keys beside each shard and an index of them all', () => {
    const index = JSON.parse(readFileSync(join(out, 'index.json'), 'utf8')) as { shards: { shard: string; count: number; stats: string }[]; images: number };
    expect(index.shards.map((s) => [s.shard, s.count])).toEqual([['herbdl-000000.tar', 10], ['herbdl-000001.tar', 10], ['herbdl-000002.tar', 5]]);
    expect(index.images).toBe(25);
    for (const s of index.shards) {
      const stats = JSON.parse(readFileSync(join(out, s.stats), 'utf8')) as { count: number; bytes: number; first: { gbifID: number }; last: { gbifID: number } };
      const jpgs = tar(['-tf', join(out, s.shard)]).toString().trim().split('\n').filter((n) => n.endsWith('.jpg'));
      expect(stats.count).toBe(jpgs.length);
      expect(stats.first.gbifID).toBe(Number(jpgs[0]!.split('-')[0]));
      expect(stats.last.gbifID).toBe(Number(jpgs[jpgs.length - 1]!.split('-')[0]));
      expect(stats.bytes).toBe(jpgs.reduce((n, j) => n + tar(['-xOf', join(out, s.shard), j]).length, 0));
      // Its keys, what a pack that carries the set on reads to know what it holds: each image's, with the sha256 its .json gives.
      const keys = readFileSync(join(out, s.shard.replace(/\.tar$/, '.keys')), 'utf8').trim().split('\n').map((l) => l.split('\t'));
      expect(keys.map(([key]) => `${key}.jpg`)).toEqual(jpgs);
      for (const [key, sha256] of keys) expect(sha256).toBe((JSON.parse(tar(['-xOf', join(out, s.shard), `${key}.json`]).toString()) as { sha256: string }).sha256);
    }
  });

  it('gives byte-identical shards from the same ledger, and a second pack writes nothing', () => {
    const again = join(dir, 'shards-again');
    herbdlJson(['pack', '--db', small.db, '--images', small.images, '--out', again, '--shard-size', '10']);
    expect(digests(again)).toEqual(digests(out));
    expect(herbdlJson(['pack', '--db', small.db, '--images', small.images, '--out', out, '--shard-size', '10'])).toMatchObject({ shards: 3, written: 0, images: 0 });
  });

  it('refuses what it cannot pack, in one line', () => {
    for (const extra of [['--width', '256'], ['--state', 'failed']]) {
      const r = herbdl(['pack', '--db', small.db, '--images', small.images, '--out', join(dir, 'refused'), ...extra]);
      expect(r.status).toBe(2);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(existsSync(join(dir, 'refused'))).toBe(false);
    }
  });

  it('refuses a stored file cut short or gone, in one line naming it (exit 5), and keeps no shard half-written', async () => {
    const broken = await collection(dir, 'broken', 6, () => 1);
    const first = join(broken.images, rel(7_100_000_000, 0));
    const third = join(broken.images, rel(7_100_000_026, 0));
    truncateSync(third, 100);
    const shards = join(dir, 'broken-shards');
    const cut = herbdl(['pack', '--db', broken.db, '--images', broken.images, '--out', shards, '--shard-size', '2']);
    expect(cut.status).toBe(5);
    expect(cut.stderr.trim().split('\n')).toEqual([expect.stringMatching(new RegExp(`^herbdl: ${third} is 100 bytes where the ledger has [0-9,]+; herbdl verify --repair`))]);
    // The shard before it is finished and kept; the one it was in is not left half-written.
    expect(shardFiles(shards)).toEqual(['herbdl-000000.tar']);
    expect(readdirSync(shards).filter((f) => f.endsWith('.part'))).toEqual([]);
    rmSync(first);
    const gone = herbdl(['pack', '--db', broken.db, '--images', broken.images, '--out', join(dir, 'broken-again'), '--shard-size', '2']);
    expect(gone.status).toBe(5);
    expect(gone.stderr.trim().split('\n')).toEqual([`herbdl: ${first}: a done gbifID's file is not in the tree; herbdl verify --repair finds every such file and makes its gbifID pending, for the next run to fetch`]);
  });

  it('carried on, adds the images done since below its last one, each once, and says what the set holds that is no longer done', async () => {
    const grown = join(dir, 'grown-images');
    const db = join(dir, 'grown.db');
    const body = await sharp({ create: { width: 50, height: 40, channels: 3, background: { r: 10, g: 20, b: 200 } } }).jpeg().toBuffer();
    const ids = Array.from({ length: 12 }, (_, i) => 7_200_000_000 + i);
    const listing = join(dir, 'grown.txt');
    herbdlJson(['ingest', '--db', db, writeMultimedia(listing, ids.map((id) => [id, `https://pack.example/grown/${id}.jpg`] as [number, string]))]);
    const place = (list: number[]) => list.forEach((id) => (mkdirSync(dirname(join(grown, rel(id, 0))), { recursive: true }), writeFileSync(join(grown, rel(id, 0)), body)));
    const set = join(dir, 'grown-set');
    const pack = (to = set) => herbdlJson<{ shards: number; written: number; images: number; late?: number; stale?: number }>(['pack', '--db', db, '--images', grown, '--out', to, '--shard-size', '4']);
    /** Every image key in the set's shards, read by GNU tar, in shard order. */
    const packedKeys = () => shardFiles(set).flatMap((f) => tar(['-tf', join(set, f)]).toString().trim().split('\n').filter((n) => n.endsWith('.jpg')));
    const keyOf = (id: number) => `${id}-00.jpg`;
    // Three low gbifIDs are not done yet when the set is first packed (failed for now, say).
    place(ids.slice(3));
    herbdlJson(['adopt', grown, '--db', db, '--trust-jpeg']);
    expect(pack()).toMatchObject({ shards: 3, images: 9 });
    // Two are done later (a retry that succeeded). The set was packed before keys were kept: its shards' keys are read from their tars.
    place(ids.slice(1, 3));
    herbdlJson(['adopt', grown, '--db', db, '--trust-jpeg']);
    for (const f of readdirSync(set).filter((f) => f.endsWith('.keys'))) rmSync(join(set, f));
    expect(pack()).toEqual(expect.objectContaining({ shards: 4, written: 1, images: 2, late: 2, stale: 0 }));
    expect(readdirSync(set).filter((f) => f.endsWith('.keys'))).toHaveLength(4);
    // The last one later still: a third run of shards, the set's keys merged from all three.
    place(ids.slice(0, 1));
    herbdlJson(['adopt', grown, '--db', db, '--trust-jpeg']);
    const text = herbdl(['pack', '--db', db, '--images', grown, '--out', set, '--shard-size', '4']);
    expect(text.status).toBe(0);
    expect(text.stdout).toMatch(/late {5}1 of them done since the set's earlier shards were written, below its last image/);
    expect(text.stdout).not.toMatch(/stale/);
    expect(pack()).toEqual(expect.objectContaining({ shards: 5, written: 0, late: 0, stale: 0 }));
    expect(packedKeys()).toEqual([...ids.slice(3), ...ids.slice(1, 3), ids[0]!].map(keyOf));
    // A snapshot without one of them removes it: the set still holds it, and says so.
    herbdlJson(['ingest', '--db', db, '--snapshot', writeMultimedia(join(dir, 'grown-less.txt'), ids.filter((_, i) => i !== 5).map((id) => [id, `https://pack.example/grown/${id}.jpg`] as [number, string]))]);
    expect(pack()).toEqual(expect.objectContaining({ written: 0, late: 0, stale: 1 }));
    expect(herbdl(['pack', '--db', db, '--images', grown, '--out', set, '--shard-size', '4']).stdout).toMatch(/stale {4}the set's earlier shards hold 1 images that are not done in the ledger now .*\n.*pack into a new folder/);
    // A set that matches says neither.
    expect(herbdl(['pack', '--db', small.db, '--images', small.images, '--out', out, '--shard-size', '10']).stdout).not.toMatch(/late|stale/);
    expect(pack(join(dir, 'grown-new')).images).toBe(11);
  });

  it("gives each image's .json its gbifID's labels (herbdl labels), null where the occurrence file has none", async () => {
    const labelled = await collection(dir, 'labelled', 4, (i) => 1 + (i % 2));
    const ids = [0, 1, 2, 3].map((i) => 7_100_000_000 + i * 13);
    const occurrences = join(dir, 'labelled-occurrence.txt');
    writeFileSync(occurrences, ['gbifID\tfamily\tscientificName', ...ids.slice(0, 3).map((id) => `${id}\tFagaceae\tQuercus ${id}`)].join('\n') + '\n');
    herbdlJson(['labels', '--db', labelled.db, occurrences, '--fields', 'scientificName,family']);
    const set = join(dir, 'labelled-set');
    expect(herbdlJson<{ images: number }>(['pack', '--db', labelled.db, '--images', labelled.images, '--out', set]).images).toBe(6);
    const shard = join(set, 'herbdl-000000.tar');
    const labelsOf = (key: string) => (JSON.parse(tar(['-xOf', shard, `${key}.json`]).toString()) as { labels: unknown }).labels;
    expect(labelsOf(`${ids[1]}-00`)).toEqual({ scientificName: `Quercus ${ids[1]}`, family: 'Fagaceae' });
    expect(labelsOf(`${ids[1]}-01`)).toEqual({ scientificName: `Quercus ${ids[1]}`, family: 'Fagaceae' });
    expect(labelsOf(`${ids[3]}-00`)).toEqual({ scientificName: null, family: null });
  });

  it('--split puts each gbifID, with all its images, in one split, by a hash of its gbifID alone; carried on, a set keeps to it; other shares are refused', () => {
    const splitOut = join(dir, 'splits');
    const r = herbdlJson<{ splits: Record<string, { images: number; shards: number }> }>(['pack', '--db', small.db, '--images', small.images, '--out', splitOut, '--shard-size', '4', '--split', 'val=30,test=30']);
    expect(Object.keys(r.splits)).toEqual(['val', 'test', 'train']);
    const keysIn = (name: string) => shardFiles(join(splitOut, name)).flatMap((f) => tar(['-tf', join(splitOut, name, f)]).toString().trim().split('\n').filter((n) => n.endsWith('.jpg')));
    const bySplit = Object.fromEntries(['val', 'test', 'train'].map((name) => [name, keysIn(name)]));
    // Every done image once, in the split its gbifID's sha256 puts it (the rule README gives, computed here on its own).
    const all = Object.values(bySplit).flat().sort();
    expect(all).toHaveLength(25);
    expect(new Set(all).size).toBe(25);
    const expected = (id: number) => {
      const at = createHash('sha256').update(String(id)).digest().readUInt32BE(0) / 2 ** 32;
      return at < 0.3 ? 'val' : at < 0.6 ? 'test' : 'train';
    };
    for (const [name, keys] of Object.entries(bySplit)) {
      expect(r.splits[name]?.images).toBe(keys.length);
      for (const key of keys) expect(expected(Number(key.split('-')[0]))).toBe(name);
    }
    expect(Object.values(bySplit).every((keys) => keys.length > 0)).toBe(true);
    expect(JSON.parse(readFileSync(join(splitOut, 'val', 'index.json'), 'utf8'))).toMatchObject({ split: 'val', splits: 'val=30,test=30,train=40' });
    // Packed again, nothing new: nothing written.
    const again = herbdlJson<{ splits: Record<string, { written: number }> }>(['pack', '--db', small.db, '--images', small.images, '--out', splitOut, '--shard-size', '4', '--split', 'val=30,test=30']);
    expect(Object.values(again.splits).map((s) => s.written)).toEqual([0, 0, 0]);
    // Other shares would move gbifIDs between splits: refused, one line, nothing written.
    for (const [args, holds] of [
      [['--out', splitOut, '--split', 'val=10,test=10'], /splits\/val holds split val of --split val=30,test=30,train=40, not split val of --split val=10,test=10,train=80: pack into another folder$/],
      [['--out', join(splitOut, 'val')], /splits\/val holds split val of --split val=30,test=30,train=40, not a set with no split: pack into another folder$/],
    ] as const) {
      const refused = herbdl(['pack', '--db', small.db, '--images', small.images, '--shard-size', '4', ...args]);
      expect(refused.status).toBe(2);
      expect(refused.stderr.trim().split('\n')).toEqual([expect.stringMatching(holds)]);
    }
    for (const [spec, problem] of [['val=60,test=50', /the shares add up to 110, not 100/], ['val=5,train=90', /the shares add up to 95, not 100/], ['val=100', /one split is the whole set/], ['val', /expected name=percent pairs/]] as const) {
      const bad = herbdl(['pack', '--db', small.db, '--images', small.images, '--out', join(dir, 'never'), '--split', spec]);
      expect(bad.status).toBe(2);
      expect(bad.stderr).toMatch(problem);
      expect(existsSync(join(dir, 'never'))).toBe(false);
    }
  });

  it('carries a set on only with the label fields its .json give: labels loaded since are refused, in one line', () => {
    const plain = join(dir, 'plain-then-labels');
    const db = join(dir, 'plain-then-labels.db');
    copyFileSync(small.db, db);
    herbdlJson(['pack', '--db', db, '--images', small.images, '--out', plain, '--shard-size', '10']);
    expect(JSON.parse(readFileSync(join(plain, 'index.json'), 'utf8'))).toMatchObject({ labels: [] });
    const occurrences = join(dir, 'plain-occurrence.txt');
    writeFileSync(occurrences, 'gbifID\tfamily\n7100000000\tFagaceae\n');
    herbdlJson(['labels', '--db', db, occurrences, '--fields', 'family']);
    const refused = herbdl(['pack', '--db', db, '--images', small.images, '--out', plain, '--shard-size', '10']);
    expect(refused.status).toBe(2);
    expect(refused.stderr.trim().split('\n')).toEqual([expect.stringMatching(/plain-then-labels holds shards whose \.json give no labels, not labels family as the ledger has now \(herbdl labels\): pack into another folder$/)]);
    expect(herbdlJson<{ images: number }>(['pack', '--db', db, '--images', small.images, '--out', join(dir, 'labelled-again')]).images).toBe(25);
    expect(JSON.parse(readFileSync(join(dir, 'labelled-again', 'index.json'), 'utf8'))).toMatchObject({ labels: ['family'] });
  });

  it('refuses to carry on a set whose shard has no keys and a tar it cannot read, in one line, writing nothing', () => {
    const copy = join(dir, 'shards-damaged');
    spawnSync('cp', ['-r', out, copy]);
    for (const f of readdirSync(copy).filter((f) => f.endsWith('.keys'))) rmSync(join(copy, f));
    truncateSync(join(copy, 'herbdl-000001.tar'), 1000);
    const before = readdirSync(copy).sort();
    const r = herbdl(['pack', '--db', small.db, '--images', small.images, '--out', copy, '--shard-size', '10']);
    expect(r.status).toBe(2);
    expect(r.stderr.trim().split('\n')).toEqual([expect.stringMatching(/herbdl-000001\.tar: the tar ends without its end marker \(cut short, or not a shard of herbdl's\), so which images the set holds cannot be told; pack into a new folder$/)]);
    // The first shard's keys were read from its sound tar and kept; nothing else changed.
    expect(readdirSync(copy).sort()).toEqual([...before, 'herbdl-000000.keys'].sort());
  });

  it('after kill -9, the next pack keeps the finished shards and ends with the same bytes as an uninterrupted one', async () => {
    const big = await collection(dir, 'big', 3000, () => 1);
    const whole = join(dir, 'whole');
    herbdlJson(['pack', '--db', big.db, '--images', big.images, '--out', whole, '--shard-size', '100']);
    const killed = join(dir, 'killed');
    const child = spawnHerbdl(['pack', '--db', big.db, '--images', big.images, '--out', killed, '--shard-size', '100']);
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline && child.exitCode === null && !(existsSync(killed) && readdirSync(killed).some((f) => f.endsWith('.stats.json')))) {
      await new Promise((r) => setTimeout(r, 5));
    }
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    const before = shardFiles(killed).length;
    expect(before).toBeGreaterThan(0);
    expect(before).toBeLessThan(30);
    const resumed = herbdlJson<{ shards: number; written: number; late: number; stale: number }>(['pack', '--db', big.db, '--images', big.images, '--out', killed, '--shard-size', '100']);
    expect(resumed.shards).toBe(30);
    // Nothing was done in between: nothing late, nothing stale.
    expect(resumed).toMatchObject({ late: 0, stale: 0 });
    expect(resumed.written).toBeGreaterThanOrEqual(30 - before);
    expect(digests(killed)).toEqual(digests(whole));
    expect(readdirSync(killed).filter((f) => f.endsWith('.part'))).toEqual([]);
  });
});
