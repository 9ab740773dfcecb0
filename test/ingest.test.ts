import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { FIXTURES, herbdl, herbdlJson, tempDir } from './helpers/cli.js';
import { readLedger, type IngestJson, type StatusJson } from './helpers/ledger.js';
import { writeMultimedia } from './helpers/multimedia.js';
import { writeZip } from './helpers/zip.js';

const FIXTURE = join(FIXTURES, 'multimedia.txt');
const EXPECTED_SKIPS = { wrong_column_count: 2, invalid_gbif_id: 5, not_still_image: 4, empty_identifier: 2, invalid_url: 4 };

describe('herbdl ingest of the bundled fixture', () => {
  const dir = tempDir();
  const db = join(dir, 'fixture.db');
  const first = herbdlJson<IngestJson>(['ingest', FIXTURE, '--db', db]);

  it('counts rows, new gbifIDs, images, duplicates and skips by reason', () => {
    expect(first).toMatchObject({ rowsRead: 30, gbifIds: 9, images: 12, duplicates: 1, reopened: 0, interrupted: false });
    expect(first.skipped).toEqual(EXPECTED_SKIPS);
  });

  it('numbers each gbifID\'s images in order of first appearance', () => {
    const rows = readLedger(db, (d) => d.prepare('SELECT image_index, url FROM images WHERE gbif_id = 1000001 ORDER BY image_index').all());
    expect(rows).toEqual([
      { image_index: 0, url: 'https://img1.example.org/sheets/1000001-a.jpg' },
      { image_index: 1, url: 'https://img1.example.org/sheets/1000001-b.jpg' },
      { image_index: 2, url: 'https://img2.example.org/sheets/1000001-c.png' },
    ]);
  });

  it('trims a gbifID with a trailing space into the same ID', () => {
    const rows = readLedger(db, (d) => d.prepare('SELECT image_index, creator FROM images WHERE gbif_id = 1000002 ORDER BY image_index').all());
    expect(rows).toEqual([
      { image_index: 0, creator: 'Ø. Næss' },
      { image_index: 1, creator: '' },
    ]);
  });

  it('keeps host, format and the attribution a licence needs', () => {
    const row = readLedger(db, (d) =>
      d.prepare("SELECT h.host, a.format, a.license, a.rights_holder, a.publisher FROM images i JOIN hosts h USING (host_id) JOIN attributions a USING (attribution_id) WHERE gbif_id = 1000005").get(),
    );
    expect(row).toEqual({ host: 'img3.example.org', format: 'jpeg', license: 'All rights reserved', rights_holder: 'Herbarium Example', publisher: 'Example Herbarium' });
  });

  it('treats a double quote as an ordinary character (no quoting in GBIF files)', () => {
    const row = readLedger(db, (d) => d.prepare('SELECT url, rights_holder FROM images JOIN attributions USING (attribution_id) WHERE gbif_id = 1000008').get());
    expect(row).toEqual({ url: 'https://img1.example.org/sheets/%22odd.jpg', rights_holder: '"Royal Botanic Garden' });
  });

  it('keeps IIIF manifests typed empty or InteractiveResource', () => {
    const urls = readLedger(db, (d) => d.prepare('SELECT url FROM images WHERE gbif_id IN (1000006, 1000007) ORDER BY gbif_id').pluck().all());
    expect(urls).toEqual(['https://iiif.example.org/herb/iiif/E0001/manifest', 'https://iiif.example.org/specimen/BR0002/manifest']);
  });

  it('keeps one image URL shared by several gbifIDs findable as one URL', () => {
    const shared = readLedger(db, (d) =>
      d.prepare('SELECT url_hash, count(*) AS ids FROM images GROUP BY url_hash HAVING count(*) > 1').all(),
    ) as { ids: number }[];
    expect(shared).toHaveLength(1);
    expect(shared[0]?.ids).toBe(3);
  });

  it('never lets a non-numeric gbifID into the ledger', () => {
    const ids = readLedger(db, (d) => d.prepare('SELECT gbif_id FROM ids ORDER BY gbif_id').pluck().all());
    expect(ids).toEqual([1000001, 1000002, 1000003, 1000004, 1000005, 1000006, 1000007, 1000008, 1000021]);
  });

  it('status agrees with what was ingested', () => {
    const status = herbdlJson<StatusJson>(['status', '--db', db]);
    expect(status.complete).toBe(true);
    expect(status.ids).toEqual({ total: 9, pending: 9, done: 0, failed: 0, excluded: 0, removed: 0 });
    expect(status.images).toEqual({ total: 12, pending: 12, done: 0, failed: 0, excluded: 0, removed: 0 });
    expect(status.hosts.map((h) => [h.host, h.images])).toEqual([
      ['img1.example.org', 4],
      ['img2.example.org', 3],
      ['img3.example.org', 3],
      ['iiif.example.org', 2],
    ].sort((a, b) => (b[1] as number) - (a[1] as number) || String(a[0]).localeCompare(String(b[0]))));
    expect(status.errors).toEqual({});
  });

  it('is idempotent: the same file again adds nothing', () => {
    const again = herbdlJson<IngestJson>(['ingest', FIXTURE, '--db', db]);
    expect(again).toMatchObject({ rowsRead: 30, gbifIds: 0, images: 0, duplicates: 13 });
    const status = herbdlJson<StatusJson>(['status', '--db', db]);
    expect(status.ids.total).toBe(9);
    expect(status.images.total).toBe(12);
    const indexes = readLedger(db, (d) => d.prepare('SELECT count(*) FROM images').pluck().get());
    expect(indexes).toBe(12);
  });
});

describe('a newer export', () => {
  it('adds new IDs and images, and reopens a done ID that gained an image', () => {
    const dir = tempDir();
    const db = join(dir, 'newer.db');
    herbdlJson(['ingest', join(FIXTURES, 'multimedia.txt'), '--db', db]);
    // Mark 1000001 done as a finished run would (the run command owns this in practice).
    const w = new Database(db);
    w.exec("UPDATE ids SET state = 1 WHERE gbif_id = 1000001; UPDATE totals SET value = value + 1 WHERE name = 'ids_done'; UPDATE totals SET value = value - 1 WHERE name = 'ids_pending'");
    w.close();
    const newer = join(dir, 'newer.txt');
    const header = readFileSync(FIXTURE, 'utf8').split('\n')[0];
    const row = (id: string, url: string) => [id, 'StillImage', 'image/jpeg', url, '', '', '', '', '', '', '', '', '', '', ''].join('\t');
    writeFileSync(newer, [header, row('1000001', 'https://img1.example.org/sheets/1000001-d.jpg'), row('1000001', 'https://img1.example.org/sheets/1000001-a.jpg'), row('3000001', 'https://img4.example.org/new.jpg')].join('\n') + '\n');
    const summary = herbdlJson<IngestJson>(['ingest', newer, '--db', db]);
    expect(summary).toMatchObject({ gbifIds: 1, images: 2, duplicates: 1, reopened: 1 });
    const rows = readLedger(db, (d) => d.prepare('SELECT image_index, url FROM images WHERE gbif_id = 1000001 ORDER BY image_index').all()) as { image_index: number; url: string }[];
    expect(rows.map((r) => r.image_index)).toEqual([0, 1, 2, 3]);
    expect(rows[3]?.url).toBe('https://img1.example.org/sheets/1000001-d.jpg');
    const status = herbdlJson<StatusJson>(['status', '--db', db]);
    expect(status.ids).toEqual({ total: 10, pending: 10, done: 0, failed: 0, excluded: 0, removed: 0 });
    expect(status.images.total).toBe(14);
  });
});

describe('text variants', () => {
  const dir = tempDir();
  const original = readFileSync(FIXTURE, 'utf8');

  it.each([
    ['CRLF line ends', original.replace(/\n/g, '\r\n')],
    ['a UTF-8 byte order mark', '\uFEFF' + original],
    ['no newline at the end', original.trimEnd()],
    ['blank lines', original.replace(/\n/g, '\n\n')],
  ])('reads a file with %s the same way', (_name, text) => {
    const file = join(dir, `variant-${Math.random().toString(36).slice(2)}.txt`);
    writeFileSync(file, text);
    const summary = herbdlJson<IngestJson>(['ingest', file, '--db', join(dir, `${Math.random().toString(36).slice(2)}.db`)]);
    expect(summary).toMatchObject({ rowsRead: 30, gbifIds: 9, images: 12, duplicates: 1 });
    expect(summary.skipped).toEqual(EXPECTED_SKIPS);
  });

  describe('a file of many megabytes, its lines cut across reads and inflated pieces', () => {
    // Plain files are read a mebibyte at a time into one buffer, reused; gzip and zip inflate in 64 KiB pieces: a line split between two must come out whole.
    const rows: [number, string, string][] = [];
    for (let id = 1; rows.length < 40_000; id++) {
      for (let k = 0; k <= id % 2; k++) rows.push([id, `https://h${id % 7}.example.org/${'p'.repeat(id % 97)}/${id}-${k}.jpg`, `Sammler ${'ä'.repeat(id % 5)}${id}`]);
    }
    const plain = writeMultimedia(join(dir, 'many-reads.txt'), rows);

    it.each([
      ['plain', async () => plain],
      ['gzipped', async () => {
        const file = join(dir, 'many-reads.txt.gz');
        writeFileSync(file, gzipSync(readFileSync(plain)));
        return file;
      }],
      ['in a zip', async () => writeZip(join(dir, 'many-reads.zip'), { 'multimedia.txt': readFileSync(plain) })],
    ])('%s: every row read back as written', async (name, make) => {
      expect(statSync(plain).size).toBeGreaterThan(4 * 2 ** 20);
      const db = join(dir, `many-reads-${name.replace(/ /g, '-')}.db`);
      expect(herbdlJson<IngestJson>(['ingest', await make(), '--db', db])).toMatchObject({ rowsRead: rows.length, images: rows.length, duplicates: 0 });
      const stored = readLedger(db, (d) => d.prepare('SELECT gbif_id, url, creator FROM images ORDER BY gbif_id, image_index').raw().all());
      expect(stored).toEqual(rows);
    });
  });

  it('maps columns by header name: the old GBIF column order', () => {
    const db = join(dir, 'old.db');
    const summary = herbdlJson<IngestJson>(['ingest', join(FIXTURES, 'multimedia-old-order.txt'), '--db', db]);
    expect(summary).toMatchObject({ rowsRead: 3, gbifIds: 1, images: 2 });
    expect(summary.skipped.empty_identifier).toBe(1);
    const row = readLedger(db, (d) => d.prepare('SELECT license, rights_holder, publisher FROM images JOIN attributions USING (attribution_id) WHERE image_index = 0').get());
    expect(row).toEqual({ license: 'CC BY 4.0', rights_holder: 'Old Herbarium', publisher: 'Old Pub' });
  });

  it('ingests several files in one call', () => {
    const db = join(dir, 'two.db');
    const summary = herbdlJson<IngestJson>(['ingest', FIXTURE, join(FIXTURES, 'multimedia-old-order.txt'), '--db', db]);
    expect(summary).toMatchObject({ rowsRead: 33, gbifIds: 10, images: 14 });
  });

  it('prints a readable summary without --json', () => {
    const r = herbdl(['ingest', FIXTURE, '--db', join(dir, 'human.db')]);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/rows read\s+30/);
    expect(r.stdout).toMatch(/invalid_gbif_id\s+5/);
    expect(r.stdout).toMatch(/rows\/s/);
    expect(r.stderr).toBe('');
  });
});

describe('an ID whose rows come back later in the file', () => {
  it('is numbered the same by a bulk load and by an incremental ingest', () => {
    const dir = tempDir();
    const header = readFileSync(FIXTURE, 'utf8').split('\n')[0];
    const row = (id: string, url: string) => [id, 'StillImage', 'image/jpeg', url, '', '', '', '', '', '', '', '', '', '', ''].join('\t');
    const file = join(dir, 'revisits.txt');
    writeFileSync(
      file,
      [
        header,
        row('7', 'https://a.example.org/1.jpg'),
        row('7', 'https://a.example.org/2.jpg'),
        row('8', 'https://a.example.org/8.jpg'),
        row('7', 'https://a.example.org/2.jpg'),
        row('7', 'https://a.example.org/3.jpg'),
        row('8', 'https://a.example.org/8.jpg'),
      ].join('\n') + '\n',
    );
    const bulkDb = join(dir, 'bulk.db');
    const bulk = herbdlJson<IngestJson>(['ingest', file, '--db', bulkDb]);
    const incrementalDb = join(dir, 'incremental.db');
    herbdlJson(['ingest', join(FIXTURES, 'multimedia-old-order.txt'), '--db', incrementalDb]);
    const incremental = herbdlJson<IngestJson>(['ingest', file, '--db', incrementalDb]);
    for (const summary of [bulk, incremental]) expect(summary).toMatchObject({ gbifIds: 2, images: 4, duplicates: 2 });
    const q = 'SELECT gbif_id, image_index, url FROM images WHERE gbif_id IN (7, 8) ORDER BY gbif_id, image_index';
    const expected = [
      { gbif_id: 7, image_index: 0, url: 'https://a.example.org/1.jpg' },
      { gbif_id: 7, image_index: 1, url: 'https://a.example.org/2.jpg' },
      { gbif_id: 7, image_index: 2, url: 'https://a.example.org/3.jpg' },
      { gbif_id: 8, image_index: 0, url: 'https://a.example.org/8.jpg' },
    ];
    expect(readLedger(bulkDb, (d) => d.prepare(q).all())).toEqual(expected);
    expect(readLedger(incrementalDb, (d) => d.prepare(q).all())).toEqual(expected);
    expect(herbdlJson<StatusJson>(['status', '--db', bulkDb]).images.total).toBe(4);
  });
});
