/**
 * A user who started alone on a SQLite file carries on with many workers:
 * `herbdl migrate` moves the ledger with all its state, export and status
 * give the same afterwards, and workers on PostgreSQL take up what was left.
 */
import { createServer } from 'node:net';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { herbdl, herbdlAsync, herbdlJson, tempDir } from './helpers/cli.js';
import { imageServers } from './helpers/image-server.js';
import { writeMultimedia } from './helpers/multimedia.js';
import { until } from './helpers/pg-run.js';
import { freshDatabase, query } from './helpers/postgres.js';
import { expectConsistentTree, workspace } from './helpers/run.js';

async function refusedPort(address: string): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, address, resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('herbdl migrate', async () => {
  const [a] = await imageServers(1, 90);
  const dir = tempDir();

  it('moves done, failed, breakers and counters; both ledgers export the same; workers carry on', async () => {
    const dead = '127.0.0.91';
    const port = await refusedPort(dead);
    const rows: [number, string][] = [];
    for (let i = 0; i < 30; i++) rows.push([9_100_000 + i, a!.route(`/m-${i}.jpg`, { kind: 'image' })]);
    for (let i = 0; i < 4; i++) rows.push([9_200_000 + i, a!.route(`/m-missing-${i}.jpg`, { kind: 'status', status: 404 })]);
    for (let i = 0; i < 5; i++) rows.push([9_300_000 + i, `http://${dead}:${port}/m-${i}.jpg`]);
    const ws = workspace(dir, rows);
    // The dead host refuses at once: --timeout only guards the healthy answers, each with one attempt.
    const first = await ws.run(['--breaker-threshold', '1', '--retries', '1', '--timeout', '10']);
    expect(first.json).toMatchObject({ idsDone: 30, idsFailed: 4 });
    expect(first.json.hostsOpened).toEqual([dead]);

    // Derivatives, and what a recheck found (freshness), are state too.
    expect(herbdlJson(['derive', '32', '--db', ws.db, '--out', ws.out])).toMatchObject({ derived: 30 });
    expect(JSON.parse((await herbdlAsync(['recheck', '--all', '--db', ws.db, '--out', ws.out, '--allow-private-network', '--json'])).stdout)).toMatchObject({ checked: 30, sameBytes: 30 });
    rmSync(join(ws.out, 'w32'), { recursive: true });
    // So are labels (herbdl labels): all but the last gbifID have an occurrence row.
    const occurrences = join(dir, 'occurrence.txt');
    writeFileSync(occurrences, ['gbifID\tscientificName\tfamily', ...rows.slice(0, -1).map(([id]) => `${id}\tQuercus robur ${id}\tFagaceae`)].join('\n') + '\n');
    expect(herbdlJson(['labels', '--db', ws.db, occurrences, '--fields', 'scientificName,family'])).toMatchObject({ labelled: 38 });
    const pg = await freshDatabase('migrate');
    const moved = herbdlJson<{ rows: Record<string, number> }>(['migrate', '--from', ws.db, '--to', pg]);
    expect(moved.rows).toMatchObject({ ids: 39, images: 39 });
    // With the statistics of what it wrote, so the first run's plans use the indexes.
    expect(await query(pg, "SELECT relname FROM pg_stat_user_tables WHERE relname IN ('images', 'ids', 'hosts') AND last_analyze IS NOT NULL ORDER BY relname")).toEqual([{ relname: 'hosts' }, { relname: 'ids' }, { relname: 'images' }]);
    const status = (db: string) => {
      const { workers: _w, ...rest } = herbdlJson(['status', '--db', db, '--hosts', '50']);
      return rest;
    };
    expect(status(pg)).toEqual(status(ws.db));
    expect(status(pg)).toMatchObject({ ids: { done: 30, failed: 4, pending: 5 }, errors: { http_404: 4 }, derivatives: [{ width: 32, ids: 30 }], freshness: { last: { current: 30 } }, labels: { fields: ['scientificName', 'family'], ids: 38 } });
    for (const state of ['all', 'done', 'failed']) {
      const [x, y] = [join(dir, `m-sqlite-${state}.csv`), join(dir, `m-pg-${state}.csv`)];
      expect(herbdl(['export', '--db', ws.db, '--state', state, '--out-file', x]).status).toBe(0);
      expect(herbdl(['export', '--db', pg, '--state', state, '--out-file', y]).status).toBe(0);
      expect(readFileSync(y, 'utf8')).toBe(readFileSync(x, 'utf8'));
    }
    expect(readFileSync(join(dir, 'm-pg-all.csv'), 'utf8')).toMatch(/^gbifID,.*,error,scientificName,family\r\n/);
    const [breaker] = await query<{ open: boolean }>(pg, 'SELECT breaker_open_until > 0 AS open FROM hosts WHERE host = $1', [dead]);
    expect(breaker).toEqual({ open: true });

    // A second migrate into the same database is refused, and changes nothing.
    const again = herbdl(['migrate', '--from', ws.db, '--to', pg]);
    expect(again.status).toBe(4);
    expect(again.stderr.trim().split('\n')).toEqual([expect.stringMatching(/already holds a ledger; migrate moves a ledger into an empty database/)]);

    // Workers on the moved ledger go on from where the file was: nothing done is fetched again, the
    // failures asked for are tried again, and the open breaker holds (the dead host is not asked).
    const before = a!.requests.length;
    const next = await herbdlAsync(['retry-failed', '--error', 'http_404', '--db', pg, '--out', ws.out, '--allow-private-network', '--json'], { timeoutMs: 30_000 });
    expect(next.status).toBe(0);
    expect(a!.requests.length - before).toBe(4);
    // The dead host's gbifIDs were moved parked behind it, with their count: not claimed again.
    expect(JSON.parse(next.stdout.trim().split('\n').pop() as string)).toMatchObject({ idsDone: 0, idsFailed: 4, idsSetAside: 0, blocked: {} });
    expect(status(pg)).toMatchObject({ ids: { done: 30, failed: 4, pending: 5 }, blockedHosts: [expect.objectContaining({ host: dead, blockedIds: 5 })] });
    expectConsistentTree(ws);
  });

  it('moves one moment of the file, whatever an ingest beside it commits meanwhile', async () => {
    const rows = (first: number, count: number) => Array.from({ length: count }, (_, i) => [first + i, a!.route(`/moment-${first + i}.jpg`, { kind: 'image' })] as [number, string]);
    const source = join(dir, 'moment.db');
    expect(herbdlJson(['ingest', writeMultimedia(join(dir, 'moment-1.txt'), rows(9_500_000, 200)), '--db', source])).toMatchObject({ gbifIds: 200 });
    // The target's schema made first (an ingest of no rows), so that a trigger can hold the migrate once it has
    // copied the images, until the test lets it go: meanwhile an ingest adds 100 gbifIDs with their images to the file.
    const target = await freshDatabase('migrate_moment');
    herbdlJson(['ingest', writeMultimedia(join(dir, 'moment-0.txt'), []), '--db', target]);
    await query(
      target,
      `CREATE FUNCTION hold_migrate() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_advisory_xact_lock_shared(4242); RETURN NULL; END $$;
       CREATE TRIGGER hold_migrate AFTER INSERT ON images FOR EACH STATEMENT EXECUTE FUNCTION hold_migrate()`,
    );
    const holder = new pg.Client({ connectionString: target });
    await holder.connect();
    let migrated: ReturnType<typeof herbdlAsync> | undefined;
    try {
      await holder.query('SELECT pg_advisory_lock(4242)');
      migrated = herbdlAsync(['migrate', '--from', source, '--to', target, '--json']);
      await until(async () => (await query(target, "SELECT 1 FROM pg_stat_activity WHERE wait_event = 'advisory' AND application_name = 'herbdl'")).length === 1, 30_000, 'the migrate to copy the images');
      const beside = await herbdlAsync(['ingest', writeMultimedia(join(dir, 'moment-2.txt'), rows(9_600_000, 100)), '--db', source, '--json']);
      expect(beside.status, beside.stderr).toBe(0);
    } finally {
      await holder.end();
    }
    const moved = await migrated!;
    expect(moved.status, moved.stderr).toBe(0);
    // The file as it was when the migrate began: before, the tables copied after the images (gbifIDs, counters)
    // had the ingest's 100 gbifIDs, and the ledger moved had 100 gbifIDs without an image, counted pending.
    expect(JSON.parse(moved.stdout)).toMatchObject({ rows: { ids: 200, images: 200 } });
    expect(await query(target, 'SELECT count(*)::int AS n FROM ids i WHERE NOT EXISTS (SELECT 1 FROM images m WHERE m.gbif_id = i.gbif_id)')).toEqual([{ n: 0 }]);
    expect(herbdlJson(['status', '--db', target])).toMatchObject({ ids: { total: 200, pending: 200 }, images: { total: 200, pending: 200 } });
    // What the ingest added is the next ingest's, into the moved ledger.
    expect(herbdlJson(['ingest', join(dir, 'moment-2.txt'), '--db', target])).toMatchObject({ gbifIds: 100 });
    expect(herbdlJson(['status', '--db', target])).toMatchObject({ ids: { total: 300 }, images: { total: 300 } });
  });
});
