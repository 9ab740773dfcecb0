/**
 * A user who started alone on a SQLite file carries on with many workers:
 * `herbdl migrate` moves the ledger with all its state, export and status
 * give the same afterwards, and workers on PostgreSQL take up what was left.
 */
import { createServer } from 'node:net';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { herbdl, herbdlAsync, herbdlJson, tempDir } from './helpers/cli.js';
import { imageServers } from './helpers/image-server.js';
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
});
