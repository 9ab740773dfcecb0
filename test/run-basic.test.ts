import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { herbdlAsync, herbdlJson, tempDir } from './helpers/cli.js';
import { imageServers } from './helpers/image-server.js';
import type { StatusJson } from './helpers/ledger.js';
import { writeMultimedia } from './helpers/multimedia.js';
import type { RunJson } from './helpers/run.js';

function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name).slice(dir.length + 1))
    .sort();
}

describe('herbdl run: the basics', async () => {
  const [a, b] = await imageServers(2);
  const dir = tempDir();
  const db = join(dir, 'run.db');
  const out = join(dir, 'images');
  a!.route('/1.jpg', { kind: 'image' });
  a!.route('/2.jpg', { kind: 'image', gzip: true });
  b!.route('/3.jpg', { kind: 'image' });
  b!.route('/shared.jpg', { kind: 'image' });
  a!.route('/404.jpg', { kind: 'status', status: 404 });
  writeMultimedia(join(dir, 'mm.txt'), [
    [1234567001, `${a!.origin}/1.jpg`],
    [1234567001, `${a!.origin}/2.jpg`],
    [1234567001, `${b!.origin}/3.jpg`],
    [1234567002, `${b!.origin}/shared.jpg`],
    [1234567003, `${b!.origin}/shared.jpg`],
    [1234567004, `${b!.origin}/shared.jpg`],
    [1234567005, `${a!.origin}/1.jpg`],
    [1234567005, `${a!.origin}/404.jpg`],
  ]);
  herbdlJson(['ingest', join(dir, 'mm.txt'), '--db', db]);
  const run = await herbdlAsync(['run', '--db', db, '--out', out, '--allow-private-network', '--json']);

  it('ends by itself with exit 0 and a summary', () => {
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    const t = JSON.parse(run.stdout) as RunJson;
    expect(t).toMatchObject({ idsDone: 4, idsFailed: 1, idsSetAside: 0, pending: 0 });
    expect(t.failures).toEqual({ http_404: 1 });
  });

  it('writes <id[:3]>/<id[3:6]>/<id>-NN.jpg for done IDs only, byte for byte', () => {
    expect(filesUnder(out)).toEqual([
      '123/456/1234567001-00.jpg',
      '123/456/1234567001-01.jpg',
      '123/456/1234567001-02.jpg',
      '123/456/1234567002-00.jpg',
      '123/456/1234567003-00.jpg',
      '123/456/1234567004-00.jpg',
    ]);
    expect(readFileSync(join(out, '123/456/1234567001-01.jpg')).subarray(0, 3)).toEqual(Buffer.from([0xff, 0xd8, 0xff]));
  });

  it('fetches a URL shared by three gbifIDs once', () => {
    expect(b!.count('/shared.jpg')).toBe(1);
  });

  it('keeps no file of a gbifID with one good and one 404 image, nor temporaries', () => {
    expect(filesUnder(out).some((f) => f.includes('1234567005'))).toBe(false);
  });

  it('sends an honest User-Agent', () => {
    expect(a!.requests[0]?.userAgent).toMatch(/^herbdl\/\d+\.\d+\.\d+ \(/);
  });

  it('status counts the outcome, failures by code and by host', () => {
    const s = herbdlJson<StatusJson & { errorsByHost: { host: string; code: string; images: number }[] }>(['status', '--db', db]);
    expect(s.ids).toEqual({ total: 5, pending: 0, done: 4, failed: 1, excluded: 0, removed: 0 });
    expect(s.images).toEqual({ total: 8, pending: 1, done: 6, failed: 1, excluded: 0, removed: 0 });
    expect(s.errors).toEqual({ http_404: 1 });
    expect(s.errorsByHost).toEqual([{ host: '127.0.0.2', code: 'http_404', images: 1 }]);
  });

  it('a second run has nothing to do and rewrites nothing', async () => {
    const before = a!.requests.length + b!.requests.length;
    const again = await herbdlAsync(['run', '--db', db, '--out', out, '--allow-private-network', '--json']);
    expect(again.status).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ idsDone: 0, idsFailed: 0, images: 0 });
    expect(a!.requests.length + b!.requests.length).toBe(before);
  });

  it('a URL already stored under another gbifID is linked, not fetched again, in a later run', async () => {
    writeMultimedia(join(dir, 'newer.txt'), [[1234567009, `${a!.origin}/1.jpg`]]);
    herbdlJson(['ingest', join(dir, 'newer.txt'), '--db', db]);
    const before = a!.count('/1.jpg');
    const r = await herbdlAsync(['run', '--db', db, '--out', out, '--allow-private-network', '--json']);
    expect(JSON.parse(r.stdout)).toMatchObject({ idsDone: 1, images: 0, shared: 1 });
    expect(a!.count('/1.jpg')).toBe(before);
    expect(readFileSync(join(out, '123/456/1234567009-00.jpg')).equals(readFileSync(join(out, '123/456/1234567001-00.jpg')))).toBe(true);
  });
});

describe('herbdl run: bodies in memory and on disk', async () => {
  // Noise compresses badly: a JPEG well over the 512 KiB a fetch keeps in memory, and one well under.
  const noise = (width: number, height: number) => {
    const raw = Buffer.alloc(width * height * 3);
    let x = 7;
    for (let i = 0; i < raw.length; i++) raw[i] = (x = (x * 1103515245 + 12345) & 0x7fffffff) >> 16;
    return sharp(raw, { raw: { width, height, channels: 3 } });
  };
  const big = await noise(900, 700).jpeg({ quality: 95 }).toBuffer();
  const bigPng = await noise(600, 400).png().toBuffer();
  const truncatedBig = big.subarray(0, big.length - 4096);
  const [server] = await imageServers(1, 70);
  const dir = tempDir();
  const db = join(dir, 'run.db');
  const out = join(dir, 'images');
  server!.route('/big.jpg', { kind: 'image', body: big });
  server!.route('/big.png', { kind: 'image', body: bigPng });
  server!.route('/cut.jpg', { kind: 'image', body: truncatedBig });
  server!.route('/small.jpg', { kind: 'image' });
  writeMultimedia(join(dir, 'mm.txt'), [
    [7000000001, `${server!.origin}/big.jpg`],
    [7000000001, `${server!.origin}/small.jpg`],
    [7000000002, `${server!.origin}/big.png`],
    [7000000003, `${server!.origin}/cut.jpg`],
  ]);
  herbdlJson(['ingest', join(dir, 'mm.txt'), '--db', db]);
  const run = await herbdlAsync(['run', '--db', db, '--out', out, '--allow-private-network', '--json']);

  it('stores a body too large to keep in memory byte for byte, beside a small one', () => {
    expect(big.length).toBeGreaterThan(600 * 1024);
    expect(JSON.parse(run.stdout)).toMatchObject({ idsDone: 2, idsFailed: 1 });
    expect(readFileSync(join(out, '700/000/7000000001-00.jpg')).equals(big)).toBe(true);
    expect(readFileSync(join(out, '700/000/7000000001-01.jpg')).subarray(0, 3)).toEqual(Buffer.from([0xff, 0xd8, 0xff]));
  });

  it('converts a large PNG read from disk', async () => {
    const meta = await sharp(readFileSync(join(out, '700/000/7000000002-00.jpg'))).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(['jpeg', 600, 400]);
  });

  it('fails a large JPEG cut short (with a Content-Length that matches) as truncated, and keeps no temporary', () => {
    expect(JSON.parse(run.stdout).failures).toEqual({ truncated: 1 });
    // Not in the tree, and no temporary left in the run's temp folder either.
    expect(filesUnder(out)).toEqual(['700/000/7000000001-00.jpg', '700/000/7000000001-01.jpg', '700/000/7000000002-00.jpg']);
  });
});
