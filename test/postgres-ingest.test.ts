/**
 * Ingest into PostgreSQL is as safe as into SQLite: kill -9 mid-load and the
 * same command again ends as one clean ingest; two ingests of different files
 * at once are serialised, not interleaved.
 */
import { once } from 'node:events';
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { generateMultimedia } from '../bench/gen-multimedia.mjs';
import { urlHash } from '../src/input/url-hash.js';
import { BinaryRows } from '../src/ledger/postgres/copy-binary.js';
import { herbdl, herbdlJson, spawnHerbdl, tempDir } from './helpers/cli.js';
import { writeMultimedia } from './helpers/multimedia.js';
import type { IngestJson } from './helpers/ledger.js';
import { freshDatabase, query } from './helpers/postgres.js';
import { until } from './helpers/pg-run.js';

async function shape(db: string) {
  const [row] = await query<{ images: number; pairs: number; bad: number; ids: number }>(
    db,
    `SELECT (SELECT count(*) FROM images)::int AS images, (SELECT count(*) FROM (SELECT DISTINCT gbif_id, url FROM images) p)::int AS pairs,
       (SELECT count(*) FROM (SELECT gbif_id FROM images GROUP BY gbif_id HAVING max(image_index) + 1 <> count(*) OR count(DISTINCT image_index) <> count(*)) b)::int AS bad,
       (SELECT count(*) FROM ids)::int AS ids`,
  );
  return row!;
}

describe('ingest into PostgreSQL', () => {
  const dir = tempDir();

  it("writes COPY's binary format byte for byte: integers up to 2^53, UTF-8, rows longer than the buffer", () => {
    const rows = new BinaryRows(8);
    rows.row(3);
    rows.int8(2 ** 53 - 1);
    rows.int4(258);
    const short = Buffer.from('Müller\\植');
    rows.utf8(short, 0, short.length);
    const hex = rows.take().toString('hex');
    expect(hex).toBe('0003' + '00000008' + '001fffffffffffff' + '00000004' + '00000102' + '0000000b' + Buffer.from('Müller\\植').toString('hex'));
    expect(rows.bytes).toBe(0);
    // Texts handed over as UTF-8 bytes within a larger buffer, short (copied byte by byte) or long (in one call).
    const long = `https://a.example.org/${'Ł'.repeat(40)}.jpg`;
    const source = Buffer.from(`xx${long}Müller\\植`);
    const split = 2 + Buffer.byteLength(long);
    rows.utf8(source, 2, split);
    rows.utf8(source, split, source.length);
    const field = (s: string) => Buffer.byteLength(s).toString(16).padStart(8, '0') + Buffer.from(s).toString('hex');
    expect(rows.take().toString('hex')).toBe(field(long) + field('Müller\\植'));
  });

  it('a bulk load and an incremental ingest store what the file says (large gbifIDs, backslashes, non-ASCII text) under image ids that do not repeat', async () => {
    const rows = [
      [9_007_199_254_740_991, 'https://a.example.org/x.jpg?q=a%5Cb', 'Müller, Ł. \\N 植物標本'],
      [4_294_967_296, 'https://a.example.org/%C3%A9.jpg', 'O\'Brien'],
      [7, 'https://b.example.org/7.jpg', ''],
    ] as const;
    const db = await freshDatabase('ingest_values');
    herbdlJson(['ingest', writeMultimedia(join(dir, 'values-1.txt'), rows.slice(0, 2)), '--db', db]);
    herbdlJson(['ingest', writeMultimedia(join(dir, 'values-2.txt'), rows.slice(2)), '--db', db]);
    const stored = await query<{ gbif_id: string; url: string; creator: string; url_hash: string; host: string }>(
      db,
      'SELECT i.gbif_id::text, i.url, i.creator, i.url_hash::text, h.host FROM images i JOIN hosts h USING (host_id) ORDER BY i.gbif_id DESC',
    );
    expect(stored.map(({ gbif_id, url, creator, host }) => [gbif_id, url, creator, host])).toEqual([
      ['9007199254740991', rows[0][1], rows[0][2], 'a.example.org'],
      ['4294967296', rows[1][1], rows[1][2], 'a.example.org'],
      ['7', rows[2][1], '', 'b.example.org'],
    ]);
    expect(stored.map((r) => Number(r.url_hash))).toEqual(rows.map(([, url]) => urlHash(url)));
    // A bulk load gives image ids itself and moves the sequence past them: the merge's next id follows.
    expect(await query(db, 'SELECT gbif_id::text, image_id::int FROM images ORDER BY image_id')).toEqual([
      { gbif_id: '9007199254740991', image_id: 1 },
      { gbif_id: '4294967296', image_id: 2 },
      { gbif_id: '7', image_id: 3 },
    ]);
  });

  it('kill -9 mid-load, then the same command again, ends as one clean ingest', async () => {
    const file = join(dir, 'big.txt');
    await generateMultimedia(file, { rows: 150_000, seed: 5 });
    const clean = await freshDatabase('ingest_clean');
    const expected = herbdlJson<IngestJson>(['ingest', file, '--db', clean]);
    const db = await freshDatabase('ingest_killed');
    const child = spawnHerbdl(['ingest', file, '--db', db, '--commit-every', '50']);
    const exited = once(child, 'exit');
    await until(async () => (await query<{ n: number }>(db, "SELECT count(*)::int AS n FROM pg_tables WHERE tablename = 'images'"))[0]!.n > 0 && (await query<{ n: number }>(db, 'SELECT count(*)::int AS n FROM images'))[0]!.n > 0, 30_000, 'a committed batch');
    child.kill('SIGKILL');
    await exited;
    const partial = await shape(db);
    expect(partial.images).toBeGreaterThan(0);
    expect(partial.images).toBeLessThan(expected.images);
    // The same command again finishes the interrupted load, then adds what was missing.
    const rerun = herbdlJson<IngestJson>(['ingest', file, '--db', db]);
    expect(rerun.images + partial.images).toBe(expected.images);
    expect(await shape(db)).toEqual(await shape(clean));
    const status = (u: string) => herbdlJson<{ ids: object; images: object; complete: boolean }>(['status', '--db', u]);
    expect(status(db)).toMatchObject({ complete: true, ids: status(clean).ids, images: status(clean).images });
  });

  it('a bulk load that commits every 50 ms (rows made while one transaction ends are held for the next) gives the same ledger and counts', async () => {
    const file = join(dir, 'often.txt');
    await generateMultimedia(file, { rows: 120_000, seed: 6 });
    const single = await freshDatabase('ingest_once');
    const expected = herbdlJson<IngestJson>(['ingest', file, '--db', single, '--commit-every', '100000']);
    const often = await freshDatabase('ingest_often');
    const summary = herbdlJson<IngestJson>(['ingest', file, '--db', often, '--commit-every', '50']);
    const same = (s: IngestJson) => ({ ...s, db: '', elapsedMs: 0, rowsPerSecond: 0 });
    expect(same(summary)).toEqual(same(expected));
    expect(await shape(often)).toEqual(await shape(single));
    const hosts = 'SELECT host_id, images, pending FROM hosts ORDER BY host_id';
    expect(await query(often, hosts)).toEqual(await query(single, hosts));
  });

  it('two ingests of different files at once are serialised: counts as if one ran after the other', async () => {
    const [x, y] = [join(dir, 'x.txt'), join(dir, 'y.txt')];
    await generateMultimedia(x, { rows: 60_000, seed: 7 });
    await generateMultimedia(y, { rows: 60_000, seed: 8 });
    const together = await freshDatabase('ingest_together');
    const children = [x, y].map((f) => spawnHerbdl(['ingest', f, '--db', together, '--json']));
    const outs = children.map((c) => {
      let s = '';
      c.stdout?.on('data', (d: Buffer) => (s += d.toString()));
      return () => s;
    });
    expect(await Promise.all(children.map(async (c) => (await once(c, 'exit'))[0]))).toEqual([0, 0]);
    const sequential = await freshDatabase('ingest_sequential');
    herbdlJson(['ingest', x, '--db', sequential]);
    herbdlJson(['ingest', y, '--db', sequential]);
    const a = await shape(together);
    expect(a).toEqual(await shape(sequential));
    expect(a.bad).toBe(0);
    const summed = outs.map((o) => JSON.parse(o()) as IngestJson).reduce((n, s) => n + s.images, 0);
    expect(summed).toBe(a.images);
    expect(herbdl(['status', '--db', together, '--json']).stdout).toContain('"complete":true');
  });

  it("a bulk load drops a gbifID's repeated URLs as SQLite does, across the parser's chunks, and keeps a URL that is another's with more after it", async () => {
    // One gbifID's 3,000 rows (about 300 KB, several of the parser's chunks) name 700 URLs, each again and again; a
    // URL that is another's with more after it is no repeat. Non-ASCII creators make some chunks other than ASCII.
    const rows: [number, string, string][] = [[5, 'https://a.example.org/first.jpg', 'A']];
    for (let i = 0; i < 3_000; i++) rows.push([6, `https://a.example.org/sheet-${(i * 3) % 700}.jpg${i % 500 === 1 ? 'x' : ''}`, i % 250 === 3 ? 'Müller' : 'Smith']);
    rows.push([7, 'https://a.example.org/first.jpg', 'B']);
    const file = writeMultimedia(join(dir, 'repeats.txt'), rows);
    const bulk = await freshDatabase('ingest_repeats');
    const loaded = herbdlJson<IngestJson>(['ingest', file, '--db', bulk]);
    const sqlite = join(dir, 'repeats.db');
    const reference = herbdlJson<IngestJson>(['ingest', file, '--db', sqlite]);
    expect(loaded).toMatchObject({ gbifIds: 3, images: 2 + 700 + 6, duplicates: 3_000 - 706 });
    expect({ ...loaded, db: '', elapsedMs: 0, rowsPerSecond: 0 }).toEqual({ ...reference, db: '', elapsedMs: 0, rowsPerSecond: 0 });
    const images = await query<{ gbif_id: number; image_index: number; url: string; creator: string }>(bulk, 'SELECT gbif_id::int, image_index, url, creator FROM images ORDER BY gbif_id, image_index');
    const ledger = new Database(sqlite, { readonly: true });
    try {
      expect(images).toEqual(ledger.prepare('SELECT gbif_id, image_index, url, creator FROM images ORDER BY gbif_id, image_index').all());
    } finally {
      ledger.close();
    }
    expect(images.filter((r) => r.creator === 'Müller')).toHaveLength(3);
  });

  it('a bulk load whose IDs come back later in the file: numbered as in SQLite, the ids table keyed and indexed as the schema makes it', async () => {
    const file = writeMultimedia(join(dir, 'revisits.txt'), [
      [7, 'https://a.example.org/1.jpg'],
      [7, 'https://a.example.org/2.jpg'],
      [8, 'https://a.example.org/8.jpg'],
      [7, 'https://a.example.org/2.jpg'],
      [7, 'https://a.example.org/3.jpg'],
      [8, 'https://a.example.org/8.jpg'],
      [9, 'https://a.example.org/9.jpg'],
    ]);
    const bulk = await freshDatabase('ingest_revisits');
    expect(herbdlJson<IngestJson>(['ingest', file, '--db', bulk])).toMatchObject({ gbifIds: 3, images: 5, duplicates: 2 });
    expect(await query(bulk, 'SELECT gbif_id::int, image_index, url FROM images ORDER BY gbif_id, image_index')).toEqual([
      { gbif_id: 7, image_index: 0, url: 'https://a.example.org/1.jpg' },
      { gbif_id: 7, image_index: 1, url: 'https://a.example.org/2.jpg' },
      { gbif_id: 7, image_index: 2, url: 'https://a.example.org/3.jpg' },
      { gbif_id: 8, image_index: 0, url: 'https://a.example.org/8.jpg' },
      { gbif_id: 9, image_index: 0, url: 'https://a.example.org/9.jpg' },
    ]);
    expect(await query(bulk, 'SELECT gbif_id::int, state FROM ids ORDER BY gbif_id')).toEqual([7, 8, 9].map((gbif_id) => ({ gbif_id, state: 0 })));
    // The load COPYs ids without their key and indexes and builds them at its end, the key unique; the claim's index is left to the first run.
    expect(await query(bulk, "SELECT indexname, indexdef LIKE 'CREATE UNIQUE%' AS is_unique FROM pg_indexes WHERE tablename = 'ids' ORDER BY indexname")).toEqual([
      { indexname: 'ids_blocked', is_unique: false },
      { indexname: 'ids_by_worker', is_unique: false },
      { indexname: 'ids_pkey', is_unique: true },
      { indexname: 'ids_retryable', is_unique: false },
    ]);
    expect(await query(bulk, "SELECT name FROM herbdl_meta WHERE name LIKE 'bulk%'")).toEqual([]);
    expect(herbdlJson<{ ids: object }>(['status', '--db', bulk]).ids).toMatchObject({ total: 3, pending: 3 });
  });
});
