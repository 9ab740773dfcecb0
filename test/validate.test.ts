/** What is kept is a real JPEG: decoded before acceptance, converted when it is another format. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import Database from 'better-sqlite3';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { tempDir } from './helpers/cli.js';
import { imageServers, sampleJpeg } from './helpers/image-server.js';
import { workspace } from './helpers/run.js';

const base = () => sharp({ create: { width: 60, height: 40, channels: 4, background: { r: 200, g: 30, b: 60, alpha: 0.5 } } });

/** A PNG header claiming width x height, with no pixel data worth the name: a decompression bomb's shape. */
function bombPng(width: number, height: number): Buffer {
  const chunk = (type: string, data: Buffer) => {
    const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(body));
    return Buffer.concat([len, body, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', Buffer.alloc(16)), chunk('IEND', Buffer.alloc(0))]);
}

describe('validation and JPEG normalisation', async () => {
  const [server] = await imageServers(1, 60);
  const dir = tempDir();
  const jpeg = await sampleJpeg();
  const bodies: Record<string, Buffer> = {
    png: await base().png().toBuffer(),
    tiff: await base().tiff().toBuffer(),
    webp: await base().webp().toBuffer(),
    gif: await base().gif().toBuffer(),
    avif: await base().avif().toBuffer(),
    cmyk: await base().flatten().toColourspace('cmyk').jpeg().toBuffer(),
    png16: await base().toColourspace('rgb16').png().toBuffer(),
    rotated: await sharp({ create: { width: 60, height: 40, channels: 3, background: '#336699' } }).withMetadata({ orientation: 6 }).png().toBuffer(),
  };
  const rows: [number, string][] = Object.keys(bodies).map((name, i) => [9500000 + i, server!.route(`/${name}`, { kind: 'image', body: bodies[name] })]);
  rows.push([9500100, server!.route('/plain.jpg', { kind: 'image', body: jpeg })]);
  rows.push([9500101, server!.route('/truncated.jpg', { kind: 'image', body: jpeg.subarray(0, Math.floor(jpeg.length * 0.6)) })]);
  rows.push([9500102, server!.route('/image.jp2', { kind: 'image', body: Buffer.concat([Buffer.from([0, 0, 0, 0x0c, 0x6a, 0x50, 0x20, 0x20, 0x0d, 0x0a, 0x87, 0x0a]), Buffer.alloc(200, 7)]) })]);
  rows.push([9500103, server!.route('/bomb.png', { kind: 'image', body: bombPng(30000, 30000) })]);
  rows.push([9500104, server!.route('/garbage.png', { kind: 'image', body: Buffer.concat([bodies.png!.subarray(0, 8), Buffer.alloc(300, 1)]) })]);
  const ws = workspace(dir, rows);
  const { json } = await ws.run(['--timeout', '5']);
  const db = new Database(ws.db, { readonly: true });
  const row = (id: number) => db.prepare('SELECT state, error_code, width, height, received_format, bytes, sha256 FROM images WHERE gbif_id = ?').get(id) as Record<string, unknown>;

  it('stores every convertible format as a JPEG, recording what was received', async () => {
    expect(json.idsDone).toBe(9);
    for (const [i, name] of Object.keys(bodies).entries()) {
      const id = 9500000 + i;
      const file = join(ws.out, String(id).slice(0, 3), String(id).slice(3, 6), `${id}-00.jpg`);
      const stored = readFileSync(file);
      expect([name, stored.subarray(0, 3)]).toEqual([name, Buffer.from([0xff, 0xd8, 0xff])]);
      const meta = await sharp(stored).metadata();
      expect([name, meta.format, meta.space, meta.depth]).toEqual([name, 'jpeg', 'srgb', 'uchar']);
      const r = row(id);
      expect(r.state).toBe(1);
      expect(r.bytes).toBe(stored.length);
      expect(r.received_format).toBe(name === 'cmyk' ? 'jpeg' : name === 'avif' ? 'heif' : name.replace(/16|rotated/, '') || 'png');
    }
  });

  it('applies EXIF orientation when converting', () => {
    expect(row(9500007)).toMatchObject({ width: 40, height: 60 });
  });

  it('keeps a JPEG that decodes byte for byte', () => {
    const stored = readFileSync(join(ws.out, '950', '010', '9500100-00.jpg'));
    expect(stored.equals(jpeg)).toBe(true);
    expect(row(9500100)).toMatchObject({ width: 64, height: 48, received_format: 'jpeg' });
  });

  it('fails a truncated JPEG served with a correct Content-Length, an unreadable format, a bomb, and garbage', () => {
    expect(json.failures).toEqual({ truncated: 1, unsupported_format: 1, too_large: 1, not_image: 1 });
    expect(row(9500101)).toMatchObject({ state: 2, error_code: 'truncated' });
    expect(row(9500102)).toMatchObject({ state: 2, error_code: 'unsupported_format' });
    expect(row(9500103)).toMatchObject({ state: 2, error_code: 'too_large' });
    expect(row(9500104)).toMatchObject({ state: 2, error_code: 'not_image' });
  });

  it('--max-edge downscales larger images', async () => {
    const small = workspace(dir, [[9600001, server!.route('/big.jpg', { kind: 'image', body: jpeg })]]);
    await small.run(['--max-edge', '32']);
    const stored = readFileSync(join(small.out, '960', '000', '9600001-00.jpg'));
    expect(await sharp(stored).metadata()).toMatchObject({ width: 32, height: 24, format: 'jpeg' });
  });
});
