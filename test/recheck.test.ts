/**
 * `herbdl recheck`: stored images asked for again with conditional requests.
 * Unchanged ones are confirmed with no body sent (counted at the server),
 * changed ones replaced with the new bytes and sha256 (derivatives too),
 * gone ones marked and kept until prune; a server without validators is
 * handled by hashing; a transient failure is no verdict. Kill -9 during a
 * recheck leaves every gbifID its old complete set or its new one. A stored
 * file gone or cut short is asked for whole and put back. On SQLite and
 * PostgreSQL, through the real CLI against loopback hosts.
 */
import { createHash } from 'node:crypto';
import { readFileSync, rmSync, truncateSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { herbdl, herbdlAsync, herbdlJson, spawnHerbdl, tempDir } from './helpers/cli.js';
import { imageServers } from './helpers/image-server.js';
import { writeMultimedia } from './helpers/multimedia.js';
import type { RecheckJson } from './helpers/run.js';
import { heldByAnother, until } from './helpers/pg-run.js';
import { freshDatabase, query } from './helpers/postgres.js';

const rel = (id: number, nn: number) => `${String(id).slice(0, 3)}/${String(id).slice(3, 6)}/${id}-${String(nn).padStart(2, '0')}.jpg`;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const sheet = (seed: number, width = 320) =>
  sharp({ create: { width, height: 240, channels: 3, background: { r: (seed * 37) % 256, g: (seed * 91) % 256, b: 120 } } }).jpeg().toBuffer();

async function runOk(args: string[]): Promise<string> {
  const r = await herbdlAsync(args);
  if (r.status !== 0) throw new Error(`herbdl ${args[0]} exited ${r.status}: ${r.stderr}`);
  return r.stdout;
}

for (const [label, octet, ledger] of [
  ['SQLite', 66, async (dir: string) => join(dir, 'fresh.db')],
  ['PostgreSQL', 68, async () => freshDatabase('recheck')],
] as const) {
  describe(`herbdl recheck on ${label}`, async () => {
    const [a, b] = await imageServers(2, octet);
    const dir = tempDir();
    const db = await ledger(dir);
    const out = join(dir, 'images');
    const old = await Promise.all([0, 1, 2, 3, 4, 5, 6, 7, 8, 9].map((i) => sheet(i)));
    const newer = await Promise.all([0, 1, 2, 3].map((i) => sheet(100 + i, 360)));
    const lm = 'Mon, 02 Nov 2026 10:00:00 GMT';
    const route = (server: typeof a, name: string, body: Buffer, etag?: string) => server!.route(`/${name}.jpg`, { kind: 'image', body, ...(etag ? { etag, lastModified: lm } : {}) });
    route(a, 'u1', old[0]!, '"u1-v1"');
    route(a, 'c1', old[1]!, '"c1-v1"');
    route(a, 'u2', old[2]!, '"u2-v1"');
    route(a, 'c2', old[3]!, '"c2-v1"');
    route(a, 'g1', old[4]!, '"g1-v1"');
    route(a, 'u3', old[5]!, '"u3-v1"');
    route(a, 't1', old[6]!, '"t1-v1"');
    b!.route('/h1.jpg', { kind: 'image', body: old[7]! });
    b!.route('/h2.jpg', { kind: 'image', body: old[8]! });
    const url = (server: typeof a, name: string) => `${server!.origin}/${name}.jpg`;
    herbdlJson(['ingest', writeMultimedia(join(dir, 'mm.txt'), [
      [5100000001, url(a, 'u1')], [5100000001, url(a, 'c1')],
      [5100000002, url(a, 'u2')],
      [5100000003, url(a, 'c2')],
      [5100000004, url(a, 'g1')], [5100000004, url(a, 'u3')],
      [5100000005, url(b, 'h1')],
      [5100000006, url(b, 'h2')],
      [5100000007, url(a, 't1')],
    ]), '--db', db]);
    await runOk(['run', '--db', db, '--out', out, '--allow-private-network', '--derive', '64', '--json']);
    const derivativeBefore = readFileSync(join(out, 'w64', rel(5100000001, 1)));
    // Training sets packed before the recheck, of the originals and of a width.
    const packSet = (folder: string, extra: string[] = []) => herbdlJson<{ written: number; images: number; late: number; stale: number; changed: number }>(['pack', '--db', db, '--images', out, '--out', join(dir, folder), ...extra]);
    const packedBefore = [packSet('set'), packSet('set-w64', ['--width', '64'])];
    const idleRecheck = JSON.parse(await runOk(['recheck', '--db', db, '--out', out, '--allow-private-network', '--json'])) as RecheckJson;
    // The hosts change: new versions (new bytes and ETag), one image gone, one host failing for now.
    route(a, 'c1', newer[0]!, '"c1-v2"');
    route(a, 'c2', newer[1]!, '"c2-v2"');
    a!.route('/g1.jpg', { kind: 'status', status: 404 });
    a!.route('/t1.jpg', { kind: 'status', status: 503 });
    b!.route('/h2.jpg', { kind: 'image', body: newer[2]! });
    const sentBefore = { a: a!.bodiesSent, b: b!.bodiesSent };
    const summary = JSON.parse(await runOk(['recheck', '--db', db, '--out', out, '--allow-private-network', '--all', '--json'])) as RecheckJson;
    const packedAfter = [packSet('set'), packSet('set-w64', ['--width', '64'])];

    it('says that a training set packed before holds the images it replaced in their old version (pack, carried on)', () => {
      expect(packedBefore.map((p) => p.images)).toEqual([9, 9]);
      // The gone image is still done (its file kept until prune): not stale.
      for (const after of packedAfter) expect(after).toMatchObject({ written: 0, late: 0, stale: 0, changed: 3 });
      expect(herbdl(['pack', '--db', db, '--images', out, '--out', join(dir, 'set')]).stdout).toMatch(/changed {2}the set's earlier shards hold 3 images in the version they had when packed, which a recheck has replaced since\n.*pack into a new folder/);
      expect(packSet('set-after')).toMatchObject({ images: 9 });
    });

    it('run keeps each image\'s validators; nothing is due right after it (weekly for the first month)', () => {
      expect(idleRecheck).toMatchObject({ checked: 0 });
    });

    it('confirms unchanged images with a 304 (no body sent) or, without validators, by their bytes', () => {
      expect(summary).toMatchObject({ checked: 9, notModified: 3, sameBytes: 1, changed: 3, gone: 1, later: { http_503: 1 } });
      expect(a!.bodiesSent - sentBefore.a).toBe(2);
      expect(a!.notModified).toBe(3);
      expect(b!.bodiesSent - sentBefore.b).toBe(2);
    });

    it('replaces a changed image with the new bytes, its sha256 in the export, and its derivative made again', () => {
      expect(readFileSync(join(out, rel(5100000001, 1))).equals(newer[0]!)).toBe(true);
      expect(readFileSync(join(out, rel(5100000001, 0))).equals(old[0]!)).toBe(true);
      expect(readFileSync(join(out, rel(5100000006, 0))).equals(newer[2]!)).toBe(true);
      const lines = herbdl(['export', '--db', db, '--format', 'jsonl']).stdout.trim().split('\n').map((l) => JSON.parse(l) as { gbifID: number; NN: number; sha256: string; width: number });
      const c1 = lines.find((l) => l.gbifID === 5100000001 && l.NN === 1);
      expect(c1).toMatchObject({ sha256: sha(newer[0]!), width: 360 });
      const derivative = readFileSync(join(out, 'w64', rel(5100000001, 1)));
      expect(derivative.equals(derivativeBefore)).toBe(false);
    });

    it('marks a gone image, keeps its file, lists its gbifID in status; prune removes the file and the gbifID keeps the rest', async () => {
      expect(readFileSync(join(out, rel(5100000004, 0))).equals(old[4]!)).toBe(true);
      const status = herbdlJson<{ freshness: { changed: number; gone: number; goneIds: number[]; last: { current: number; overdue: number } } }>(['status', '--db', db]);
      expect(status.freshness).toMatchObject({ changed: 3, gone: 1, goneIds: [5100000004] });
      // Re-checkable: every stored image but the gone one.
      expect(status.freshness.last.current + status.freshness.last.overdue).toBe(8);
      expect(herbdl(['status', '--db', db]).stdout).toMatch(/freshness as of the last recheck .*3 changed and replaced, 1 gone at the source/);
      const pruned = JSON.parse(await runOk(['prune', '--db', db, '--out', out, '--json'])) as { goneImages: number; files: number };
      expect(pruned).toMatchObject({ goneImages: 1, files: 2 });
      const after = herbdlJson<{ ids: Record<string, number>; images: Record<string, number>; freshness: { gone: number } }>(['status', '--db', db]);
      expect(after.freshness.gone).toBe(0);
      expect(after.ids).toMatchObject({ done: 7, removed: 0 });
      expect(after.images).toMatchObject({ done: 8, removed: 1 });
      const again = JSON.parse(await runOk(['recheck', '--db', db, '--out', out, '--allow-private-network', '--all', '--json'])) as RecheckJson;
      expect(again).toMatchObject({ checked: 8, gone: 0, changed: 0, later: { http_503: 1 } });
    });

    it('--budget caps the requests of one recheck', async () => {
      const r = JSON.parse(await runOk(['recheck', '--db', db, '--out', out, '--allow-private-network', '--all', '--budget', '2', '--json'])) as RecheckJson;
      expect(r.checked).toBe(2);
    });

    it('--plan prints per tier what falls due per day, and per host its measured rate and whether it keeps up; nothing changes', async () => {
      const plan = JSON.parse(await runOk(['recheck', '--db', db, '--out', out, '--plan', '--json'])) as {
        images: number;
        tiers: { everyDays: number; images: number; duePerDay: number }[];
        hosts: { host: string; rate: number | null; keepsUp: boolean | null; duePerDay: number }[];
      };
      expect(plan.images).toBe(8);
      expect(plan.tiers.map((t) => t.everyDays)).toEqual([7, 30, 90, 365]);
      expect(plan.tiers[0]).toMatchObject({ images: 8 });
      expect(plan.tiers[0]!.duePerDay).toBeCloseTo(8 / 7, 5);
      const hostA = plan.hosts.find((h) => h.host === new URL(a!.origin).hostname);
      expect(hostA?.rate).toBeGreaterThan(0);
      expect(hostA?.keepsUp).toBe(true);
      const text = herbdl(['recheck', '--db', db, '--plan']);
      expect(text.stdout).toMatch(/every 7\.0 d until 30\.0 d old/);
    });
  });
}

for (const [label, octet, ledger] of [
  ['SQLite', 73, async (dir: string) => join(dir, 'restore.db')],
  ['PostgreSQL', 74, async () => freshDatabase('recheck_restore')],
] as const) {
  describe(`herbdl recheck on ${label} beside stored files gone or cut short`, async () => {
    const [server] = await imageServers(1, octet);
    const dir = tempDir();
    const db = await ledger(dir);
    const out = join(dir, 'images');
    const bodies = await Promise.all([0, 1, 2, 3].map((i) => sheet(40 + i)));
    const png = await sharp({ create: { width: 300, height: 200, channels: 3, background: { r: 10, g: 200, b: 30 } } }).png().toBuffer();
    const ids = [5400000001, 5400000002, 5400000003, 5400000004, 5400000005];
    const urls = [
      server!.route('/cut.jpg', { kind: 'image', body: bodies[0]!, etag: '"cut"' }),
      server!.route('/lost.jpg', { kind: 'image', body: bodies[1]!, etag: '"lost"' }),
      // No validators: confirmed by its bytes when intact.
      server!.route('/plain.jpg', { kind: 'image', body: bodies[2]! }),
      // Stored converted to JPEG: the host's bytes are not the stored file's.
      server!.route('/sheet.png', { kind: 'image', body: png, etag: '"png"' }),
      server!.route('/intact.jpg', { kind: 'image', body: bodies[3]!, etag: '"intact"' }),
    ];
    herbdlJson(['ingest', writeMultimedia(join(dir, 'mm.txt'), ids.map((id, i) => [id, urls[i]!] as [number, string])), '--db', db]);
    await runOk(['run', '--db', db, '--out', out, '--allow-private-network', '--derive', '64', '--json']);
    const stored = ids.map((id) => readFileSync(join(out, rel(id, 0))));
    const derivative = readFileSync(join(out, 'w64', rel(ids[0]!, 0)));
    truncateSync(join(out, rel(ids[0]!, 0)), 1000);
    rmSync(join(out, rel(ids[1]!, 0)));
    truncateSync(join(out, rel(ids[2]!, 0)), 2000);
    rmSync(join(out, rel(ids[3]!, 0)));

    it('asks for each whole (no 304 can confirm it) and puts the same version back; the intact one is confirmed by a 304', async () => {
      const sent = server!.bodiesSent;
      const r = JSON.parse(await runOk(['recheck', '--db', db, '--out', out, '--allow-private-network', '--all', '--json'])) as RecheckJson;
      expect(r).toMatchObject({ checked: 5, restored: 4, notModified: 1, sameBytes: 0, changed: 0, gone: 0, later: {} });
      expect(server!.bodiesSent - sent).toBe(4);
      ids.forEach((id, i) => expect(readFileSync(join(out, rel(id, 0))).equals(stored[i]!), String(id)).toBe(true));
      // Made from the same bytes, the derivative stays as it was.
      expect(readFileSync(join(out, 'w64', rel(ids[0]!, 0))).equals(derivative)).toBe(true);
      const verified = herbdl(['verify', '--db', db, '--out', out, '--hash']);
      expect(verified.status, verified.stderr).toBe(0);
      const again = JSON.parse(await runOk(['recheck', '--db', db, '--out', out, '--allow-private-network', '--all', '--json'])) as RecheckJson;
      expect(again).toMatchObject({ checked: 5, restored: 0, notModified: 4, sameBytes: 1 });
    });
  });
}

describe('herbdl recheck: due by age, and kill -9', async () => {
  const [server] = await imageServers(1, 71);
  const dir = tempDir();
  const db = join(dir, 'kill.db');
  const out = join(dir, 'images');
  const ids = Array.from({ length: 30 }, (_, i) => 5200000000 + i);
  const oldBodies = await Promise.all(ids.flatMap((_, i) => [sheet(2 * i), sheet(2 * i + 1)]));
  const newBodies = await Promise.all(ids.flatMap((_, i) => [sheet(500 + 2 * i, 330), sheet(501 + 2 * i, 330)]));
  ids.forEach((id, i) => [0, 1].forEach((k) => server!.route(`/${id}-${k}.jpg`, { kind: 'image', body: oldBodies[2 * i + k]!, etag: `"${id}-${k}-v1"` })));
  herbdlJson(['ingest', writeMultimedia(join(dir, 'mm.txt'), ids.flatMap((id) => [[id, `${server!.origin}/${id}-0.jpg`], [id, `${server!.origin}/${id}-1.jpg`]] as [number, string][])), '--db', db]);
  await runOk(['run', '--db', db, '--out', out, '--allow-private-network', '--json']);

  it('takes only the images whose tier says they are due', async () => {
    const ledgerDb = new Database(db);
    const day = 86_400_000;
    // Stored 40 days ago, confirmed 31 days ago: monthly now, and due. Another stored 40 days ago, confirmed 10 days ago: not due.
    ledgerDb.prepare('UPDATE images SET stored_at = ?, confirmed_at = ? WHERE gbif_id = ?').run(Date.now() - 40 * day, Date.now() - 31 * day, ids[0]);
    ledgerDb.prepare('UPDATE images SET stored_at = ?, confirmed_at = ? WHERE gbif_id = ?').run(Date.now() - 40 * day, Date.now() - 10 * day, ids[1]);
    ledgerDb.close();
    const r = JSON.parse(await runOk(['recheck', '--db', db, '--out', out, '--allow-private-network', '--json'])) as RecheckJson;
    expect(r).toMatchObject({ checked: 2, notModified: 2 });
    const custom = JSON.parse(await runOk(['recheck', '--db', db, '--out', out, '--allow-private-network', '--tiers', '1d<30d,5d', '--json'])) as RecheckJson;
    expect(custom).toMatchObject({ checked: 2 });
    const bad = herbdl(['recheck', '--db', db, '--tiers', '7d<30d,banana']);
    expect(bad.status).toBe(2);
    expect(bad.stderr.trim()).toBe('herbdl: --tiers: expected a duration such as 7d, 2w, 6m or 2y, got "banana"');
  });

  it('killed with -9 while replacing, leaves every gbifID its old complete set or its new one', async () => {
    ids.forEach((id, i) => [0, 1].forEach((k) => server!.route(`/${id}-${k}.jpg`, { kind: 'image', body: newBodies[2 * i + k]!, etag: `"${id}-${k}-v2"`, delayMs: 20 })));
    const sent = server!.bodiesSent;
    const child = spawnHerbdl(['recheck', '--db', db, '--out', out, '--allow-private-network', '--all', '--per-host', '2', '--concurrency', '2', '--json']);
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline && server!.bodiesSent - sent < 24 && child.exitCode === null) await new Promise((r) => setTimeout(r, 2));
    const killedMidway = child.exitCode === null;
    child.kill('SIGKILL');
    await exited;
    expect(killedMidway).toBe(true);
    // The next start (prune here) rolls back what the killed one left half-replaced.
    await runOk(['prune', '--db', db, '--out', out, '--json']);
    const exported = new Map(
      herbdl(['export', '--db', db, '--format', 'jsonl']).stdout.trim().split('\n').map((l) => JSON.parse(l) as { gbifID: number; NN: number; sha256: string }).map((l) => [`${l.gbifID}-${l.NN}`, l.sha256]),
    );
    let replaced = 0;
    ids.forEach((id, i) => {
      const files = [0, 1].map((k) => readFileSync(join(out, rel(id, k))));
      const isOld = files.every((f, k) => f.equals(oldBodies[2 * i + k]!));
      const isNew = files.every((f, k) => f.equals(newBodies[2 * i + k]!));
      expect(isOld || isNew).toBe(true);
      if (isNew) replaced++;
      files.forEach((f, k) => expect(exported.get(`${id}-${k}`)).toBe(sha(f)));
    });
    expect(replaced).toBeLessThan(ids.length);
    const rest = JSON.parse(await runOk(['recheck', '--db', db, '--out', out, '--allow-private-network', '--all', '--json'])) as RecheckJson;
    expect(rest.changed + replaced * 2).toBe(ids.length * 2);
    ids.forEach((id, i) => [0, 1].forEach((k) => expect(readFileSync(join(out, rel(id, k))).equals(newBodies[2 * i + k]!)).toBe(true)));
  });

  it('with many requests in flight, says nothing on stderr (each listens for Ctrl-C until it ends)', async () => {
    ids.forEach((id, i) => [0, 1].forEach((k) => server!.route(`/${id}-${k}.jpg`, { kind: 'image', body: newBodies[2 * i + k]!, etag: `"${id}-${k}-v2"`, delayMs: 200 })));
    const r = await herbdlAsync(['recheck', '--db', db, '--out', out, '--allow-private-network', '--all', '--per-host', '32', '--concurrency', '32', '--json']);
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout) as RecheckJson).toMatchObject({ checked: ids.length * 2, notModified: ids.length * 2 });
    expect(r.stderr).toBe('');
  });
});

describe('herbdl recheck beside a host that asks to be left alone for a day', async () => {
  const [a, b] = await imageServers(2, 72);
  const dir = tempDir();
  const db = join(dir, 'busy.db');
  const out = join(dir, 'images');

  it('is not waited on: its images are asked again by a later recheck, the others are checked', async () => {
    const rows: [number, string][] = [];
    for (let i = 0; i < 3; i++) rows.push([5300000000 + i, a!.route(`/a${i}.jpg`, { kind: 'image', body: await sheet(i), etag: `"a${i}"` })]);
    for (let i = 0; i < 3; i++) rows.push([5300000010 + i, b!.route(`/b${i}.jpg`, { kind: 'image', body: await sheet(10 + i), etag: `"b${i}"` })]);
    herbdlJson(['ingest', writeMultimedia(join(dir, 'mm.txt'), rows), '--db', db]);
    await runOk(['run', '--db', db, '--out', out, '--allow-private-network', '--json']);
    for (let i = 0; i < 3; i++) b!.route(`/b${i}.jpg`, { kind: 'status', status: 429, headers: { 'Retry-After': '86400' } });
    const asked = b!.requests.length;
    const started = Date.now();
    const r = await herbdlAsync(['recheck', '--db', db, '--out', out, '--allow-private-network', '--all', '--per-host', '1', '--json'], { timeoutMs: 45_000 });
    expect(r.status, r.stderr).toBe(0);
    // Before, the recheck waited the day out.
    expect(Date.now() - started).toBeLessThan(40_000);
    const summary = JSON.parse(r.stdout) as RecheckJson;
    expect(summary).toMatchObject({ checked: 6, notModified: 3, later: { http_429: 1, breaker_open: 2 } });
    // One request: the host said when to come back.
    expect(b!.requests.length - asked).toBe(1);
    // The breaker it opened is the ledger's, as a run's is: a run of a gbifID new on that host asks it nothing and parks it.
    const later = b!.route('/b9.jpg', { kind: 'image', body: await sheet(19) });
    herbdlJson(['ingest', writeMultimedia(join(dir, 'more.txt'), [[5300000019, later]]), '--db', db]);
    const run = await herbdlAsync(['run', '--db', db, '--out', out, '--allow-private-network', '--json']);
    expect(run.status, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ idsDone: 0, pending: 1, blocked: { [new URL(b!.origin).hostname]: 1 } });
    expect(b!.requests.length - asked).toBe(1);
  });
});


describe('herbdl prune of an image gone at the source, its gbifID held by another worker (PostgreSQL)', async () => {
  const [server] = await imageServers(1, 75);
  const dir = tempDir();
  const db = await freshDatabase('prune_held');
  const out = join(dir, 'images');
  const bodies = await Promise.all([0, 1].map((i) => sheet(60 + i)));
  const id = 5500000001;
  const urls = [server!.route('/kept.jpg', { kind: 'image', body: bodies[0]!, etag: '"kept"' }), server!.route('/gone.jpg', { kind: 'image', body: bodies[1]!, etag: '"gone"' })];
  herbdlJson(['ingest', writeMultimedia(join(dir, 'mm.txt'), urls.map((u) => [id, u] as [number, string])), '--db', db]);
  await runOk(['run', '--db', db, '--out', out, '--allow-private-network', '--json']);
  server!.route('/gone.jpg', { kind: 'status', status: 404 });
  await runOk(['recheck', '--db', db, '--out', out, '--allow-private-network', '--all', '--json']);

  it('waits until the gbifID is let go before it removes the file, and says so', async () => {
    // Another worker (a recheck replacing the gbifID's files, a derive reading them) holds it.
    const other = await heldByAnother(db, [id], 3_600_000);
    const child = spawnHerbdl(['prune', '--db', db, '--out', out, '--json']);
    setTimeout(() => child.kill('SIGKILL'), 60_000).unref();
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    await until(() => stderr.includes('held by other workers') || child.exitCode !== null, 20_000, 'prune to wait');
    // Before, prune removed it at once, under the other worker's hands.
    expect(stderr).toBe('herbdl: 1 done gbifID is held by other workers (one stopped with -9 holds its own until its lease ends): waiting to take them\n');
    expect(readFileSync(join(out, rel(id, 1))).equals(bodies[1]!)).toBe(true);
    await query(db, 'UPDATE workers SET lease_until = 0 WHERE worker_id = $1', [other]);
    expect(await exited).toBe(0);
    expect(JSON.parse(stdout)).toMatchObject({ goneImages: 1, files: 1 });
    expect(() => readFileSync(join(out, rel(id, 1)))).toThrow(/ENOENT/);
    expect(readFileSync(join(out, rel(id, 0))).equals(bodies[0]!)).toBe(true);
    expect(herbdlJson(['status', '--db', db])).toMatchObject({ ids: { done: 1 }, images: { done: 1, removed: 1 } });
    expect(await query(db, 'SELECT count(*)::int AS n FROM ids WHERE worker_id IS NOT NULL')).toEqual([{ n: 0 }]);
  });
});
