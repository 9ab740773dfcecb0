/**
 * A pack beside commands that change the images under it. A pack reads the
 * ledger's done images through one read (SQLite) or a page at a time
 * (PostgreSQL), so an image replaced since its row was read (a run that
 * fetched it again, a recheck) has a file that differs from that row, and
 * one pruned since has none. Deterministic: the first image is a named
 * pipe, so the pack has its rows and waits there while a newer export
 * removes one gbifID, prune removes its file, and verify --repair and a run
 * put a new version of another in place; then the pack goes on. Before,
 * the pack stopped at the replaced image, exit 5, calling the tree damaged
 * ("... is N bytes where the ledger has M; herbdl verify --repair ...").
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { herbdlAsync, herbdlJson, tempDir } from './helpers/cli.js';
import { collection, pipeInPlaceOf, rel } from './helpers/collection.js';
import { imageServers } from './helpers/image-server.js';
import { writeMultimedia } from './helpers/multimedia.js';
import { freshDatabase } from './helpers/postgres.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const ids = Array.from({ length: 12 }, (_, i) => 7_100_000_000 + 13 * i);
const replaced = ids[5] as number;
const pruned = ids[9] as number;

/** A tar's members by name, read back with GNU tar. */
function members(tar: string): Map<string, Buffer> {
  const names = spawnSync('tar', ['-tf', tar], { encoding: 'utf8' }).stdout.trim().split('\n');
  return new Map(names.map((name) => [name, spawnSync('tar', ['-xOf', tar, name], { maxBuffer: 1 << 24 }).stdout as Buffer]));
}

describe('pack beside commands that change the images under it', async () => {
  const dir = tempDir();
  const [host] = await imageServers(1, 151);
  // What the host serves now: a new version of every image, larger than the stored ones.
  const newer = await sharp({ create: { width: 90, height: 70, channels: 3, background: { r: 200, g: 30, b: 30 } } }).jpeg().toBuffer();

  for (const kind of ['sqlite', 'postgres'] as const) {
    it(`packs an image replaced meanwhile as the ledger has it now, and leaves out one pruned meanwhile for the next pack (${kind})`, async () => {
      const urlOf = (id: number, n: number) => host!.route(`/${kind}/${id}/${n}.jpg`, { kind: 'image', body: newer });
      const db = kind === 'sqlite' ? join(dir, 'moving.db') : await freshDatabase('pack_moving');
      const set = await collection(dir, `moving-${kind}`, ids.length, () => 1, urlOf, db);
      const out = join(dir, `shards-${kind}`);
      const pipe = pipeInPlaceOf(join(set.images, rel(ids[0]!, 0)));
      const pack = herbdlAsync(['pack', '--db', db, '--images', set.images, '--out', out, '--json']);
      await pipe.held(); // the pack has read its rows and waits on the first image

      // A newer export without one gbifID (nor the pending one), and its file pruned.
      herbdlJson(['ingest', '--snapshot', '--db', db, writeMultimedia(join(dir, `newer-${kind}.txt`), ids.filter((id) => id !== pruned).map((id) => [id, urlOf(id, 0)] as [number, string]))]);
      expect(herbdlJson<{ ids: number }>(['prune', '--db', db, '--out', set.images]).ids).toBe(1);
      // Another's file cut short, found by verify, and fetched again by a run: the host's new version, in place.
      truncateSync(join(set.images, rel(replaced, 0)), 100);
      // (After the first gbifID: its file is the pipe, which verify would take for one cut short.)
      expect(herbdlJson<{ reopened: number }>(['verify', '--db', db, '--out', set.images, '--repair', '--after', String(ids[0])])).toMatchObject({ reopened: 1 });
      const run = await herbdlAsync(['run', '--db', db, '--out', set.images, '--allow-private-network', '--json']);
      expect(JSON.parse(run.stdout)).toMatchObject({ idsDone: 1 });
      expect(readFileSync(join(set.images, rel(replaced, 0)))).toEqual(newer);

      await pipe.feed();
      const packed = await pack;
      pipe.restore();
      expect(packed.stderr).toBe('');
      expect(packed.status).toBe(0);
      expect(JSON.parse(packed.stdout)).toMatchObject({ images: 11, moving: 1 });
      const tar = join(out, 'herbdl-000000.tar');
      const inTar = members(tar);
      expect([...inTar.keys()].filter((n) => n.endsWith('.jpg'))).toEqual(ids.filter((id) => id !== pruned).map((id) => `${id}-00.jpg`));
      // The replaced image: the new bytes, described as they are.
      expect(inTar.get(`${replaced}-00.jpg`)).toEqual(newer);
      expect(JSON.parse((inTar.get(`${replaced}-00.json`) as Buffer).toString())).toMatchObject({ bytes: newer.length, sha256: sha(newer), width: 90, height: 70 });
      expect(readFileSync(join(out, 'herbdl-000000.keys'), 'utf8')).toContain(`${replaced}-00\t${sha(newer)}\n`);
      // Carried on: nothing to add, nothing stale, nothing changed.
      expect(herbdlJson(['pack', '--db', db, '--images', set.images, '--out', out])).toMatchObject({ written: 0, late: 0, stale: 0, changed: 0, moving: 0 });
      expect(readdirSync(out).filter((f) => f.endsWith('.tar'))).toEqual(['herbdl-000000.tar']);
    });
  }

  it('holds no read of a SQLite ledger open while it works: a run beside it can checkpoint its WAL', async () => {
    const set = await collection(dir, 'wal', ids.length, () => 1);
    // Labels too: the pack reads them beside the images.
    const occurrences = join(dir, 'wal-occurrence.txt');
    writeFileSync(occurrences, ['gbifID\tfamily', ...ids.map((id) => `${id}\tFagaceae`)].join('\n') + '\n');
    herbdlJson(['labels', '--db', set.db, occurrences, '--fields', 'family']);
    const pipe = pipeInPlaceOf(join(set.images, rel(ids[0]!, 0)));
    const pack = herbdlAsync(['pack', '--db', set.db, '--images', set.images, '--out', join(dir, 'wal-shards'), '--json']);
    await pipe.held(); // the pack has begun reading the ledger, and waits on its first image
    // A write beside it, as a run's commits are: the pending gbifID excluded.
    herbdlJson(['exclude', '--db', set.db, writeMultimedia(join(dir, 'wal-exclude.txt'), [[7_999_999_999, 'https://pack.example/pending.jpg']])]);
    const db = new Database(set.db, { timeout: 100 });
    // Every frame of the WAL copied back and the WAL emptied: no reader holds an older snapshot (busy 1 if one did).
    const checkpoint = db.pragma('wal_checkpoint(TRUNCATE)');
    db.close();
    await pipe.feed();
    const packed = await pack;
    pipe.restore();
    expect(checkpoint).toEqual([{ busy: 0, log: 0, checkpointed: 0 }]);
    expect(packed.status).toBe(0);
    expect(JSON.parse(packed.stdout)).toMatchObject({ images: ids.length, moving: 0 });
  });

  it('still refuses a file that differs from the row the ledger has now: damage, not a change', async () => {
    const set = await collection(dir, 'damaged', 3, () => 1);
    truncateSync(join(set.images, rel(ids[1]!, 0)), 100);
    const r = await herbdlAsync(['pack', '--db', set.db, '--images', set.images, '--out', join(dir, 'damaged-shards')]);
    expect(r.status).toBe(5);
    expect(r.stderr.trim().split('\n')).toEqual([expect.stringMatching(new RegExp(`${ids[1]}-00\\.jpg is 100 bytes where the ledger has \\d+; herbdl verify --repair`))]);
  });
});
