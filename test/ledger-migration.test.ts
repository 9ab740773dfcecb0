/**
 * A ledger written by an earlier herbdl (schema 4: attribution in every image
 * row) opens with this one, its rows and outcomes intact, and takes more rows.
 */
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { MIGRATIONS } from '../src/ledger/sqlite/schema.js';
import { herbdl, herbdlAsync, herbdlJson, tempDir } from './helpers/cli.js';
import { readLedger, type StatusJson } from './helpers/ledger.js';
import { writeMultimedia } from './helpers/multimedia.js';

/** A ledger as herbdl of schema 4 wrote it: two gbifIDs, one done. */
function schema4Ledger(path: string): void {
  const old = new Database(path);
  old.pragma('journal_mode = WAL');
  for (const migration of MIGRATIONS.slice(0, 4)) old.exec(migration);
  old.pragma('user_version = 4');
  old.exec(`
    INSERT INTO hosts(host_id, host, images, pending, done) VALUES (1, 'img.example.org', 3, 1, 2);
    INSERT INTO images(gbif_id, image_index, url, url_hash, host_id, type, format, license, rights_holder, creator, publisher, state, bytes, sha256, width, height, final_url)
    VALUES (7001, 0, 'https://img.example.org/a.jpg', 1, 1, 'StillImage', 'image/jpeg', 'CC BY 4.0', 'Kew', 'J. Smith', 'RBG Kew', 1, 1234, '${'a'.repeat(64)}', 64, 48, 'https://img.example.org/a.jpg'),
           (7001, 1, 'https://img.example.org/b.jpg', 2, 1, 'StillImage', 'image/jpeg', 'CC BY 4.0', 'Kew', 'A. Jones', 'RBG Kew', 1, 99, '${'b'.repeat(64)}', 64, 48, 'https://img.example.org/b.jpg'),
           (7002, 0, 'https://img.example.org/c.jpg', 3, 1, '', '', 'All rights reserved', 'Meise', '', 'Meise BG', 0, NULL, NULL, NULL, NULL, NULL);
    INSERT INTO ids(gbif_id, state) VALUES (7001, 1), (7002, 0);
    UPDATE totals SET value = 1 WHERE name IN ('ids_pending', 'ids_done');
  `);
  old.close();
}

describe('a schema 4 ledger', () => {
  const dir = tempDir();
  const path = join(dir, 'old.db');
  schema4Ledger(path);

  it('is migrated on open, every image keeping its attribution and outcome', () => {
    const lines = herbdl(['export', '--db', path, '--format', 'jsonl', '--state', 'all'])
      .stdout.trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.map((l) => [l['gbifID'], l['NN'], l['license'], l['rightsHolder'], l['creator'], l['publisher'], l['state'], l['bytes']])).toEqual([
      [7001, 0, 'CC BY 4.0', 'Kew', 'J. Smith', 'RBG Kew', 'done', 1234],
      [7001, 1, 'CC BY 4.0', 'Kew', 'A. Jones', 'RBG Kew', 'done', 99],
      [7002, 0, 'All rights reserved', 'Meise', '', 'Meise BG', 'pending', null],
    ]);
    expect(readLedger(path, (d) => d.pragma('user_version', { simple: true }))).toBe(MIGRATIONS.length);
    expect(readLedger(path, (d) => d.prepare('SELECT count(*) FROM attributions').pluck().get())).toBe(2);
  });

  it('keeps its counts and takes a newer export on top', () => {
    const s = herbdlJson<StatusJson>(['status', '--db', path]);
    expect(s.ids).toEqual({ total: 2, pending: 1, done: 1, failed: 0, excluded: 0, removed: 0 });
    const more = writeMultimedia(join(dir, 'more.txt'), [
      [7002, 'https://img.example.org/c.jpg'],
      [7003, 'https://img.example.org/d.jpg'],
    ]);
    expect(herbdlJson(['ingest', more, '--db', path])).toMatchObject({ gbifIds: 1, images: 1, duplicates: 1 });
    expect(herbdlJson<StatusJson>(['status', '--db', path]).ids).toEqual({ total: 3, pending: 2, done: 1, failed: 0, excluded: 0, removed: 0 });
  });
});

describe('a schema 4 ledger opened by two commands at once', () => {
  it('is migrated once: the second finds it done when the lock comes to it', async () => {
    const path = join(tempDir(), 'old.db');
    schema4Ledger(path);
    // Both read the schema's version while another writer holds the lock, then wait for it (an ingest or a
    // run on the machine's other terminal): each applied the migrations after the first had, and failed.
    const writer = new Database(path);
    writer.exec('BEGIN IMMEDIATE');
    const opening = [herbdlAsync(['status', '--db', path, '--json']), herbdlAsync(['status', '--db', path, '--json'])];
    await new Promise((r) => setTimeout(r, 2_000));
    writer.exec('COMMIT');
    writer.close();
    for (const r of await Promise.all(opening)) {
      expect(r.status, r.stderr).toBe(0);
      expect((JSON.parse(r.stdout) as StatusJson).ids).toEqual({ total: 2, pending: 1, done: 1, failed: 0, excluded: 0, removed: 0 });
    }
    expect(readLedger(path, (d) => d.pragma('user_version', { simple: true }))).toBe(MIGRATIONS.length);
  });
});
