/**
 * An ingest beside a run (README: `ingest` may run beside it): a run's
 * writes wait for the ingest's transaction instead of failing with `database
 * is locked`.
 */
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { herbdlAsync, herbdlJson, tempDir } from './helpers/cli.js';
import { imageServers } from './helpers/image-server.js';
import { writeMultimedia } from './helpers/multimedia.js';
import { until } from './helpers/pg-run.js';

const [server] = await imageServers(1, 153);
const url = (path: string) => `${server!.origin}/${path}`;

describe('a run beside another writer on a SQLite ledger', () => {
  const dir = tempDir();

  it('waits for the writer\'s transaction to end, and records what it has meanwhile', async () => {
    const db = join(dir, 'busy.db');
    server!.route('/gone.jpg', { kind: 'status', status: 404, delayMs: 300 });
    herbdlJson(['ingest', writeMultimedia(join(dir, 'busy.txt'), [[9201, url('gone.jpg')]]), '--db', db]);
    const run = herbdlAsync(['run', '--db', db, '--out', join(dir, 'busy-images'), '--allow-private-network', '--json']);
    await until(() => server!.requests.some((r) => r.path === '/gone.jpg'), 30_000, 'the request');
    // Another process's write transaction (as an ingest's, which lasts up to a second) while the run records the 404: the
    // run's transaction reads before it writes, and SQLite refused that one at once rather than wait.
    const writer = new Database(db);
    writer.exec('BEGIN IMMEDIATE');
    writer.prepare("UPDATE totals SET value = value WHERE name = 'ids_pending'").run();
    await new Promise((r) => setTimeout(r, 3_000));
    writer.exec('COMMIT');
    writer.close();
    const done = await run;
    expect(done.status, done.stderr).toBe(0);
    expect(JSON.parse(done.stdout.trim().split('\n').pop() as string)).toMatchObject({ idsFailed: 1, failures: { http_404: 1 } });
  });
});
