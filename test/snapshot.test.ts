/**
 * Newer exports as snapshots: `ingest --snapshot` removes what the newer file
 * lacks (images, and gbifIDs left with none), adds what is new, reopens
 * gbifIDs whose set changed; an image keeps its NN for life; `run` publishes
 * the new sets whole and removes their dropped files (derivatives too);
 * `prune` removes the files of removed gbifIDs. On SQLite and PostgreSQL,
 * through the real CLI against loopback hosts.
 */
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { herbdl, herbdlAsync, herbdlJson, tempDir } from './helpers/cli.js';
import { imageServers } from './helpers/image-server.js';
import { writeMultimedia } from './helpers/multimedia.js';
import { freshDatabase, query } from './helpers/postgres.js';
import { pgWorkspace, until } from './helpers/pg-run.js';
import { treeFiles, type RunJson } from './helpers/run.js';

const rel = (id: number, nn: number) => `${String(id).slice(0, 3)}/${String(id).slice(3, 6)}/${id}-${String(nn).padStart(2, '0')}.jpg`;
const tree = (out: string) => treeFiles(out).filter((f) => !f.startsWith('.herbdl'));

interface IngestJson {
  gbifIds: number;
  images: number;
  duplicates: number;
  reopened: number;
  removedIds: number;
  removedImages: number;
  snapshot?: { applied: boolean };
}

async function scenario(firstOctet: number, ledger: (dir: string) => Promise<string>) {
  const [a, b] = await imageServers(2, firstOctet);
  const dir = tempDir();
  const db = await ledger(dir);
  const out = join(dir, 'images');
  const names = ['a', 'b', 'c', 'd', 'e', 'e2', 'f', 'g', 'h', 'i', 'new'];
  for (const [k, name] of names.entries()) {
    const body = await sharp({ create: { width: 300 + k, height: 200, channels: 3, background: { r: 20 * k, g: 100, b: 50 } } }).jpeg().toBuffer();
    (k % 2 ? b : a)!.route(`/${name}.jpg`, { kind: 'image', body });
  }
  a!.route('/x404.jpg', { kind: 'status', status: 404 });
  const url = (name: string) => `${(names.indexOf(name) % 2 ? b : a)!.origin}/${name}.jpg`;
  const older: [number, string][] = [
    [4100000001, url('a')], [4100000001, url('b')], [4100000001, url('c')],
    [4100000002, url('d')],
    [4100000003, url('e')],
    [4100000004, url('f')],
    [4100000005, url('g')], [4100000005, url('h')],
    [4100000006, `${a!.origin}/x404.jpg`],
  ];
  const newer: [number, string][] = [
    [4100000001, url('a')], [4100000001, url('c')], // b removed
    [4100000003, url('e2')], // a moved URL
    [4100000004, url('f')],
    [4100000005, url('g')], [4100000005, url('h')], [4100000005, url('i')], // an image added
    [4100000008, url('new')], // a new gbifID; 4100000002 and 4100000006 gone
  ];
  herbdlJson(['ingest', writeMultimedia(join(dir, 'older.txt'), older), '--db', db]);
  const run = async (extra: string[] = []) => {
    const r = await herbdlAsync(['run', '--db', db, '--out', out, '--allow-private-network', '--derive', '100', '--json', ...extra]);
    if (r.status !== 0) throw new Error(`run exited ${r.status}: ${r.stderr}`);
    return JSON.parse(r.stdout.trim().split('\n').pop() as string) as RunJson;
  };
  const first = await run();
  const keptBefore = statSync(join(out, rel(4100000001, 2)));
  const snapshot = herbdlJson<IngestJson>(['ingest', '--snapshot', writeMultimedia(join(dir, 'newer.txt'), newer), '--db', db]);
  const statusAfterIngest = herbdlJson<{ ids: Record<string, number>; images: Record<string, number> }>(['status', '--db', db]);
  const second = await run();
  return { a: a!, url, dir, db, out, first, second, snapshot, statusAfterIngest, keptBefore };
}

const expectedTree = [
  rel(4100000001, 0), rel(4100000001, 2),
  rel(4100000003, 1),
  rel(4100000004, 0),
  rel(4100000005, 0), rel(4100000005, 1), rel(4100000005, 2),
  rel(4100000008, 0),
];

for (const [label, octet, ledger] of [
  ['SQLite', 62, async (dir: string) => join(dir, 'snap.db')],
  ['PostgreSQL', 64, async () => freshDatabase('snapshot')],
] as const) {
  describe(`ingest --snapshot, run and prune on ${label}`, async () => {
    const s = await scenario(octet, ledger);

    it('counts what the newer file added, removed and reopened, exactly', () => {
      expect(s.first).toMatchObject({ idsDone: 5, idsFailed: 1 });
      expect(s.snapshot).toMatchObject({ gbifIds: 1, images: 3, duplicates: 5, removedIds: 2, removedImages: 4, reopened: 3, snapshot: { applied: true } });
      expect(s.statusAfterIngest.ids).toEqual({ total: 5, pending: 4, done: 1, failed: 0, excluded: 0, removed: 2 });
      expect(s.statusAfterIngest.images).toEqual({ total: 8, pending: 3, done: 5, failed: 0, excluded: 0, removed: 4 });
    });

    it('run publishes each changed set whole: NNs kept for life, dropped files and derivatives gone; removed gbifIDs wait for prune', () => {
      expect(s.second).toMatchObject({ idsDone: 4, idsFailed: 0, pending: 0 });
      // 4100000002 was removed: its file stays until prune.
      expect(tree(s.out)).toEqual([...expectedTree, rel(4100000002, 0), ...[...expectedTree, rel(4100000002, 0)].map((f) => `w100/${f}`)].sort());
      // The image that stayed keeps its name and its file: the same inode, never fetched again.
      const kept = statSync(join(s.out, rel(4100000001, 2)));
      expect(kept.ino).toBe(s.keptBefore.ino);
      expect(s.a.count('/c.jpg')).toBe(1);
    });

    it('export lists the removed images with their state', () => {
      const removed = herbdl(['export', '--db', s.db, '--state', 'removed', '--format', 'jsonl']).stdout.trim().split('\n').map((l) => JSON.parse(l) as { gbifID: number; url: string; state: string });
      expect(removed.map((r) => [r.gbifID, r.url.replace(/^.*\//, '')]).sort()).toEqual([
        [4100000001, 'b.jpg'], [4100000002, 'd.jpg'], [4100000003, 'e.jpg'], [4100000006, 'x404.jpg'],
      ]);
      expect(new Set(removed.map((r) => r.state))).toEqual(new Set(['removed']));
    });

    it('prune --dry-run says what would go and changes nothing; prune removes it, all of a gbifID; a second prune finds nothing', () => {
      const before = tree(s.out);
      const dry = herbdlJson<{ ids: number; files: number; dryRun: boolean }>(['prune', '--db', s.db, '--out', s.out, '--dry-run']);
      expect(dry).toMatchObject({ ids: 1, files: 2, dryRun: true });
      expect(tree(s.out)).toEqual(before);
      const listed = herbdl(['prune', '--db', s.db, '--out', s.out, '--list']);
      expect(listed.status).toBe(0);
      expect(listed.stdout.trim().split('\n')).toEqual([join(s.out, rel(4100000002, 0)), join(s.out, 'w100', rel(4100000002, 0)), expect.stringMatching(/^pruned 2 files \(.*\) of 1 removed gbifIDs and 0 images gone at the source from /)]);
      expect(tree(s.out)).toEqual([...expectedTree, ...expectedTree.map((f) => `w100/${f}`)].sort());
      expect(herbdlJson(['prune', '--db', s.db, '--out', s.out])).toMatchObject({ ids: 0, files: 0 });
      expect(existsSync(join(s.out, rel(4100000001, 1)))).toBe(false);
    });

    it('a gbifID brought back by a later snapshot is fetched again, and status counts it back', async () => {
      const back: [number, string][] = [[4100000001, s.url('a')], [4100000001, s.url('c')], [4100000002, s.url('d')]];
      // It lists a third of the ledger: applied only when told (--max-removal).
      const r = herbdlJson<IngestJson>(['ingest', '--snapshot', writeMultimedia(join(s.dir, 'again.txt'), back), '--db', s.db, '--max-removal', '100']);
      expect(r).toMatchObject({ images: 1, removedIds: 4, reopened: 0 });
      const status = herbdlJson<{ ids: Record<string, number> }>(['status', '--db', s.db]);
      expect(status.ids).toMatchObject({ pending: 1, done: 1, removed: 5 });
      const again = await herbdlAsync(['run', '--db', s.db, '--out', s.out, '--allow-private-network', '--json']);
      expect(again.status).toBe(0);
      expect(existsSync(join(s.out, rel(4100000002, 0)))).toBe(true);
    });
  });
}

for (const [label, ledger] of [
  ['SQLite', async (dir: string) => join(dir, 'other.db')],
  ['PostgreSQL', async () => freshDatabase('snapother')],
] as const) {
  describe(`ingest --snapshot of another query's export on ${label}`, async () => {
    const dir = tempDir();
    const db = await ledger(dir);
    const image = (id: number) => [id, `https://h${id % 3}.example.org/${id}.jpg`] as [number, string];
    const ten = Array.from({ length: 10 }, (_, i) => image(4300000000 + i));
    herbdlJson(['ingest', writeMultimedia(join(dir, 'ours.txt'), ten), '--db', db]);

    it('is refused in one line naming the file when it would remove more than --max-removal (50%): nothing removed; the right one applies after it', () => {
      // Two of ours and three of its own: 8 of the 13 images would go.
      const theirs = writeMultimedia(join(dir, 'theirs.txt'), [...ten.slice(0, 2), image(4400000001), image(4400000002), image(4400000003)]);
      const refused = herbdl(['ingest', '--snapshot', theirs, '--db', db]);
      expect(refused.status).toBe(3);
      expect(refused.stderr.trim().split('\n')).toEqual([
        `herbdl: ${theirs}: as a snapshot it lacks 62% of the ledger's images (8 of 13), more than --max-removal 50%: is it a newer export of the same query? Nothing was removed (the rows it has are in); to apply it all the same, run it again with --max-removal 100`,
      ]);
      expect(herbdlJson<{ ids: Record<string, number> }>(['status', '--db', db]).ids).toMatchObject({ total: 13, pending: 13, removed: 0 });
      // Our own newer export: it lacks the three images the wrong one added, so they go.
      expect(herbdlJson<IngestJson>(['ingest', '--snapshot', writeMultimedia(join(dir, 'ours-newer.txt'), ten), '--db', db])).toMatchObject({ removedIds: 3, removedImages: 3, snapshot: { applied: true } });
      expect(herbdlJson<{ ids: Record<string, number> }>(['status', '--db', db]).ids).toMatchObject({ total: 10, pending: 10, removed: 3 });
    });

    it('--max-removal 100 applies a snapshot that removes most of the ledger', () => {
      const two = writeMultimedia(join(dir, 'two.txt'), ten.slice(0, 2));
      expect(herbdl(['ingest', '--snapshot', two, '--db', db, '--max-removal', '70']).status).toBe(3);
      expect(herbdlJson<IngestJson>(['ingest', '--snapshot', two, '--db', db, '--max-removal', '100'])).toMatchObject({ removedIds: 8, snapshot: { applied: true } });
    });
  });
}

for (const [label, ledger] of [
  ['SQLite', async (dir: string) => join(dir, 'files.db')],
  ['PostgreSQL', async () => freshDatabase('snapfiles')],
] as const) {
  describe(`ingest --snapshot given as several files on ${label}`, async () => {
    const dir = tempDir();
    const db = await ledger(dir);
    // 30 gbifIDs, two images each; the snapshot's rows of 4500000010 to 4500000019 are split over both files.
    const images = Array.from({ length: 30 }, (_, i) => [0, 1].map((n) => [4500000000 + i, `https://h${i % 4}.example.org/${i}/${n}.jpg`] as [number, string])).flat();
    herbdlJson(['ingest', writeMultimedia(join(dir, 'older.txt'), images), '--db', db]);
    const before = label === 'PostgreSQL' ? await query<{ image_id: string; ctid: string }>(db, 'SELECT image_id, ctid::text FROM images ORDER BY image_id') : [];

    it('lists what each file has: only the image and the gbifID that neither file lists go', () => {
      const listed = images.filter(([id, url]) => url !== `https://h${5 % 4}.example.org/5/1.jpg` && id !== 4500000029);
      const first = listed.filter(([id, url]) => id < 4500000010 || (id < 4500000020 && url.endsWith('/0.jpg')));
      const second = listed.filter((row) => !first.includes(row));
      const s = herbdlJson<IngestJson>(['ingest', '--snapshot', writeMultimedia(join(dir, 'a.txt'), first), writeMultimedia(join(dir, 'b.txt'), second), '--db', db]);
      expect(s).toMatchObject({ gbifIds: 0, images: 0, duplicates: 57, removedIds: 1, removedImages: 3, reopened: 0, snapshot: { applied: true } });
      const status = herbdlJson<{ ids: Record<string, number>; images: Record<string, number> }>(['status', '--db', db]);
      expect(status.ids).toMatchObject({ total: 29, pending: 29, removed: 1 });
      expect(status.images).toMatchObject({ total: 57, pending: 57, removed: 3 });
    });

    if (label === 'PostgreSQL') {
      it('writes no row of an image it lists: each keeps its row version (no table rewritten, no bloat)', async () => {
        const after = new Map((await query<{ image_id: string; ctid: string }>(db, 'SELECT image_id, ctid::text FROM images ORDER BY image_id')).map((r) => [r.image_id, r.ctid]));
        const moved = before.filter((r) => after.get(r.image_id) !== r.ctid);
        expect(before).toHaveLength(60);
        // The three images removed were written (their state); not one listed image was.
        expect(moved).toHaveLength(3);
      });
    }
  });
}

describe('ingest --snapshot refuses what would break a run', async () => {
  const dir = tempDir();
  it('is not applied when the ingest is interrupted by a bad file: nothing removed', () => {
    const db = join(dir, 'bad.db');
    herbdlJson(['ingest', writeMultimedia(join(dir, 'one.txt'), [[4200000001, 'https://h.example/1.jpg'], [4200000002, 'https://h.example/2.jpg']]), '--db', db]);
    const r = herbdl(['ingest', '--snapshot', writeMultimedia(join(dir, 'part.txt'), [[4200000001, 'https://h.example/1.jpg']]), join(dir, 'missing.txt'), '--db', db]);
    expect(r.status).not.toBe(0);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    const status = herbdlJson<{ ids: Record<string, number> }>(['status', '--db', db]);
    expect(status.ids).toMatchObject({ pending: 2, removed: 0 });
  });
});

describe('ingest --snapshot on a shared ledger with a live worker', async () => {
  const [server] = await imageServers(1, 72);
  const dir = tempDir();
  const rows = Array.from({ length: 40 }, (_, i) => [4300000000 + i, server!.route(`/slow-${i}.jpg`, { kind: 'image', delayMs: 300 })] as [number, string]);
  const ws = await pgWorkspace(dir, 'snaplive', rows);

  it('is refused in one line naming the worker, and changes nothing; once it stops, the snapshot applies', async () => {
    const worker = ws.worker(['--per-host', '1', '--concurrency', '1']);
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline && server!.requests.length === 0) await new Promise((r) => setTimeout(r, 20));
    const newer = writeMultimedia(join(dir, 'newer-live.txt'), rows.slice(0, 10));
    const refused = herbdl(['ingest', '--snapshot', newer, '--db', ws.db]);
    expect(refused.status).toBe(4);
    expect(refused.stderr.trim().split('\n')).toEqual([expect.stringMatching(new RegExp(`^herbdl: 1 worker\\(s\\) are running on this ledger \\(.*:${worker.pid}\\): stop them before ingest --snapshot$`))]);
    expect(herbdlJson<{ ids: Record<string, number> }>(['status', '--db', ws.db]).ids).toMatchObject({ removed: 0, total: 40 });
    worker.kill('SIGTERM');
    await worker.exited;
    expect(herbdlJson<IngestJson>(['ingest', '--snapshot', newer, '--db', ws.db, '--max-removal', '80'])).toMatchObject({ removedIds: 30, snapshot: { applied: true } });
  });

  it('is refused at its removal if a worker started while it was being read, and removes nothing', async () => {
    const raceRows = Array.from({ length: 40 }, (_, i) => [4310000000 + i, server!.route(`/slow-race-${i}.jpg`, { kind: 'image', delayMs: 300 })] as [number, string]);
    const race = await pgWorkspace(dir, 'snaprace', raceRows);
    // A worker has run on it (and built the indexes runs need, which a worker on a new ledger waits for an ingest to build).
    const first = race.worker(['--per-host', '1', '--concurrency', '1']);
    const fetched = server!.requests.length;
    await until(() => server!.requests.length > fetched, 20_000, 'the first worker to fetch');
    first.kill('SIGTERM');
    expect(await first.exited).toBe(130);
    // An event trigger holds the snapshot's ingest at its first table (its work tables, before any row is locked), after
    // it found no worker, until the test lets it go.
    await query(
      race.db,
      `CREATE FUNCTION hold_ingest() RETURNS event_trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_advisory_xact_lock_shared(4343); END $$;
       CREATE EVENT TRIGGER hold_ingest ON ddl_command_end WHEN TAG IN ('CREATE TABLE') EXECUTE FUNCTION hold_ingest()`,
    );
    const newer = writeMultimedia(join(dir, 'newer-race.txt'), [...raceRows.slice(0, 10), [4310000099, server!.route('/slow-race-new.jpg', { kind: 'image' })]]);
    const holder = new pg.Client({ connectionString: race.db });
    await holder.connect();
    let ingest: ReturnType<typeof herbdlAsync> | undefined;
    let worker: ReturnType<typeof race.worker> | undefined;
    try {
      await holder.query('SELECT pg_advisory_lock(4343)');
      ingest = herbdlAsync(['ingest', '--snapshot', newer, '--db', race.db, '--max-removal', '80', '--no-progress']);
      await until(async () => (await query(race.db, "SELECT 1 FROM pg_stat_activity WHERE wait_event = 'advisory' AND application_name = 'herbdl'")).length === 1, 30_000, 'the ingest to be held');
      await query(race.db, 'DROP EVENT TRIGGER hold_ingest');
      // Meanwhile a worker starts (a batch job, a cron's): it claims gbifIDs the snapshot is about to remove.
      const before = server!.requests.length;
      worker = race.worker(['--per-host', '1', '--concurrency', '1', '--lease', '600']);
      await until(() => server!.requests.length > before, 20_000, 'the worker to claim and fetch');
    } finally {
      await holder.end();
    }
    const refused = await ingest!;
    // Before, it removed 30 gbifIDs, some of them held by the worker, which then recorded them done.
    expect(refused.status, refused.stderr).toBe(4);
    expect(refused.stderr.trim().split('\n')).toEqual([
      expect.stringMatching(new RegExp(`^herbdl: 1 worker\\(s\\) started on this ledger while the snapshot was being ingested \\(.*:${worker!.pid}\\): nothing was removed; stop them and run the same ingest --snapshot again$`)),
    ]);
    expect(herbdlJson<{ ids: Record<string, number> }>(['status', '--db', race.db]).ids).toMatchObject({ removed: 0, total: 41 });
    worker!.kill('SIGTERM');
    expect(await worker!.exited).toBe(130);
    expect(herbdlJson<IngestJson>(['ingest', '--snapshot', newer, '--db', race.db, '--max-removal', '80'])).toMatchObject({ removedIds: 30, snapshot: { applied: true } });
  });
});
