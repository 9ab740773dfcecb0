/**
 * A shared ledger's server that goes away under running workers, on a
 * PostgreSQL server of the test's own (the suite's is shared by every test
 * file): a restart (an administrator's, or a crash and its recovery) is
 * ridden out, and a worker finishes as if nothing had happened (a COMMIT
 * lost in a crash is done again, though recovery gives its transaction id to
 * another transaction); a server
 * gone for longer than the lease stops the worker in one line, with nothing
 * half-written, and the next run finishes the export; so does a server
 * that stops answering without closing its connections. A server with no
 * connection free makes a worker wait for one, not fail. A command that does
 * not wait for the server (an ingest) says so in one line.
 */
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { startCluster } from '../bench/pg-cluster.mjs';
import { createPool, migrate, rideOut, transaction } from '../src/ledger/postgres/connect.js';
import { INGEST_LOCK } from '../src/ledger/postgres/schema.js';
import { herbdlAsync, herbdlJson, tempDir } from './helpers/cli.js';
import type { StatusJson } from './helpers/ledger.js';
import { dropCommitAnswers } from './helpers/pg-proxy.js';
import { writeMultimedia } from './helpers/multimedia.js';
import { freshDatabase, query } from './helpers/postgres.js';
import { imageServers } from './helpers/image-server.js';
import { expectConsistentPgTree, pgWorkspace, spreadRows, until } from './helpers/pg-run.js';

describe('a PostgreSQL server that goes away under running workers', async () => {
  // Durable as a production server is: a crash must not take back a commit it acknowledged (the suite's server does not wait for the disk).
  // Few connections, so a test can take all but a worker's few.
  const cluster = await startCluster('-c fsync=on -c synchronous_commit=on -c full_page_writes=on -c max_connections=20');
  afterAll(() => cluster.stop());
  const hosts = await imageServers(2, 90);
  const dir = tempDir();

  /**
   * A worker that lost its lease said so in one line; every gbifID the ledger
   * has done has its files (one it was publishing may have files and an open
   * intent, as after kill -9); its claims went with its lease, so a new run
   * takes them up and finishes the export.
   */
  async function expectStoppedThenFinished(ws: Awaited<ReturnType<typeof pgWorkspace>>, stderr: string, said: RegExp): Promise<void> {
    const lines = stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(said);
    const files = new Set(ws.files());
    expect((await ws.doneFiles()).filter((f) => !files.has(f))).toEqual([]);
    const next = ws.worker(['--concurrency', '8', '--lease', '10']);
    expect(await next.exited, next.stderr()).toBe(0);
    expect(next.json().pending).toBe(0);
    await expectConsistentPgTree(ws);
    expect((await ws.doneFiles()).length).toBe(360);
  }

  /** gbifIDs with one or two images each, every answer `delayMs` late, so a run lasts a few seconds. */
  const rows = (prefix: number, count: number, delayMs: number) => spreadRows(hosts, prefix, count, delayMs, 2);

  for (const mode of ['fast', 'immediate'] as const) {
    it(`a worker rides out a restart of the server (${mode === 'fast' ? "an administrator's" : 'a crash and its recovery'}) and finishes every gbifID`, async () => {
      const ws = await pgWorkspace(dir, `restart_${mode}`, rows(mode === 'fast' ? 81 : 82, 240, 30), cluster.url);
      const before = hosts.map((h) => h.requests.length);
      // A lease far longer than the restart: under the whole suite's load (CI, 2026-12-07) a worker with a 30 s lease
      // once went 23 s without renewing it across this restart and rightly stopped (it stops 20 s in). How long the
      // server was away is said with a failure, to tell a slow restart from a heartbeat that did not come back.
      const worker = ws.worker(['--concurrency', '4', '--per-host', '2', '--lease', '90']);
      await until(() => ws.files().length >= 40, 60_000, 'the first files');
      // Every connection ends here, in the middle of the run; the server is back about a second later.
      const downAt = Date.now();
      cluster.down(mode);
      expect(ws.files().length).toBeLessThan(360);
      await new Promise((r) => setTimeout(r, 1000));
      cluster.up();
      const restart = `the server was away ${Date.now() - downAt} ms`;
      expect(await worker.exited, `${restart}; ${worker.stderr()}`).toBe(0);
      expect(worker.json()).toMatchObject({ idsDone: 240, idsFailed: 0, pending: 0 });
      // What was fetched before the restart was recorded after it: no image fetched twice.
      expect(hosts.reduce((n, h, i) => n + h.requests.length - (before[i] as number), 0)).toBe(360);
      await expectConsistentPgTree(ws);
    });
  }

  it('a COMMIT lost in a crash is made again, though recovery gave its transaction id to the next transaction', async () => {
    const db = await freshDatabase('lost_in_crash', cluster.url);
    const ledger = createPool(db);
    await migrate(ledger, db, true);
    await ledger.end();
    await query(db, 'CREATE TABLE probe (n int)');
    let reusedOnce = false;
    // Up to three tries: the id is given again only if none of the lost transaction's WAL reached the disk (the WAL
    // writer flushes only whole pages then, so nearly always).
    for (let n = 1; n <= 3 && !reusedOnce; n++) {
      // The COMMIT of the transaction that inserts into probe stays on the wire, its transaction open on the server.
      const proxy = await dropCommitAnswers(db, /^INSERT INTO probe/, 1, 'crash');
      const pool = createPool(proxy.url);
      rideOut(pool, () => {}); // as under a run's lease: a lost server is waited for
      try {
        const made = transaction(pool, async (client) => {
          await client.query('INSERT INTO probe VALUES ($1)', [n]);
          return n;
        });
        await until(() => proxy.dropped === 1, 10_000, 'the COMMIT held back');
        const open = await query<{ xid: string }>(db, "SELECT backend_xid::text AS xid FROM pg_stat_activity WHERE datname = current_database() AND state = 'idle in transaction'");
        expect(open).toHaveLength(1);
        cluster.down('immediate');
        cluster.up();
        // The first transaction after recovery writes and commits; it may be given the lost one's id.
        const other = new pg.Client(db);
        await other.connect();
        await other.query('BEGIN');
        await other.query(`CREATE TABLE other_${n} (n int)`);
        const next = (await other.query('SELECT pg_current_xact_id()::text AS xid')).rows[0].xid as string;
        await other.query('COMMIT');
        await other.end();
        reusedOnce = next === open[0]?.xid;
        proxy.refusing = false;
        expect(await made).toBe(n);
        // Asked by its transaction id alone, the lost COMMIT passed for committed when its id was given again:
        // the caller was told it was done, and the row was not there.
        expect((await query<{ n: number }>(db, 'SELECT n FROM probe WHERE n = $1', [n])).length).toBe(1);
      } finally {
        await pool.end();
        await proxy.close();
      }
    }
    expect(reusedOnce).toBe(true);
  });

  const losses = [
    { what: 'a COMMIT that went through but whose answer was lost', lose: 'answer', of: /^UPDATE ids SET state = 1/, prefix: 86 },
    { what: 'a COMMIT lost before the server had it', lose: 'commit', of: /^UPDATE ids SET state = 1/, prefix: 87 },
    // Claims of pending gbifIDs (the due ones' come first and find none). Before, the claim was made again: it took the
    // next gbifIDs, and the first stayed held by the worker, undone, until its end.
    { what: 'a claim that went through but whose answer was lost', lose: 'answer', of: /^UPDATE ids SET worker_id = \$1, blocked_host = NULL FROM \(SELECT gbif_id FROM ids WHERE state = 0 /, prefix: 88 },
  ] as const;
  for (const { what, lose, of, prefix } of losses) {
    it(`a worker carries on after ${what}: every gbifID recorded done once, no image fetched twice`, async () => {
      const ws = await pgWorkspace(dir, `unanswered_${prefix}`, rows(prefix, 240, 10), cluster.url);
      // The first three such statements' COMMITs (or their answers) are lost with their connections.
      const proxy = await dropCommitAnswers(ws.db, of, 3, lose);
      try {
        const before = hosts.map((h) => h.requests.length);
        const worker = ws.worker(['--concurrency', '4', '--per-host', '2', '--lease', '30'], proxy.url);
        // Before, a transaction whose answer was lost was sent again, found its gbifIDs no longer held (done by its own
        // first commit), and the worker stopped: "its lease ran out". One whose COMMIT never arrived must be sent again.
        expect(await worker.exited, worker.stderr()).toBe(0);
        expect(proxy.dropped).toBe(3);
        expect(worker.json()).toMatchObject({ idsDone: 240, idsFailed: 0, pending: 0 });
        expect(hosts.reduce((n, h, i) => n + h.requests.length - (before[i] as number), 0)).toBe(360);
        // Each gbifID and image counted done once: in the totals and host counters status reads, and in the worker's own tally.
        const status = herbdlJson<StatusJson>(['status', '--db', ws.db, '--hosts', '10']);
        expect(status).toMatchObject({ ids: { total: 240, done: 240, pending: 0 }, images: { total: 360, done: 360, pending: 0 } });
        expect(status.hosts.reduce((n, h) => n + h.done, 0)).toBe(360);
        expect((await query<{ done: number }>(ws.db, 'SELECT done::int AS done FROM workers'))[0]?.done).toBe(240);
        await expectConsistentPgTree(ws);
      } finally {
        await proxy.close();
      }
    });
  }

  it('a worker whose server stays away longer than its lease stops in one line, and the next run finishes', async () => {
    const ws = await pgWorkspace(dir, 'away', rows(83, 240, 30), cluster.url);
    const worker = ws.worker(['--concurrency', '4', '--per-host', '2', '--lease', '10']);
    await until(() => ws.files().length >= 40, 60_000, 'the first files');
    cluster.down();
    try {
      // It waits for the server while its lease may hold (10 s less two heartbeats), then gives up.
      expect(await worker.exited).toBe(4);
    } finally {
      cluster.up();
    }
    await expectStoppedThenFinished(ws, worker.stderr(), /^herbdl: postgres:\/\/[^ ]*: the server is away \([^)]*\) and worker \S+ could not renew its lease for \d+ s; its claims may go to other workers, so it stops publishing$/);
  });

  it('a worker whose server stops answering without closing its connections stops in one line once its lease may have run out', async () => {
    const ws = await pgWorkspace(dir, 'frozen', rows(85, 240, 30), cluster.url);
    const worker = ws.worker(['--concurrency', '4', '--per-host', '2', '--lease', '10']);
    await until(() => ws.files().length >= 40, 60_000, 'the first files');
    // Every process of the server stopped: connections stay open and nothing answers (its storage hung, a VM paused).
    cluster.freeze();
    let code: number | null | 'still running';
    try {
      // 10 s of lease, less two heartbeats, then at most a connection attempt's 15 s. Before, it waited for the server however long it took.
      code = await Promise.race([worker.exited, new Promise<'still running'>((resolve) => setTimeout(() => resolve('still running'), 40_000))]);
    } finally {
      cluster.thaw();
    }
    expect(code, worker.stderr()).toBe(4);
    await expectStoppedThenFinished(ws, worker.stderr(), /^herbdl: .*worker .* could not renew its lease for \d+ s; its claims may go to other workers, so it stops publishing$/);
  });

  it('an ingest whose connection the server ends says so in one line, and runs again', async () => {
    const db = await freshDatabase('ended', cluster.url);
    const file = writeMultimedia(join(dir, 'ended.txt'), rows(84, 50, 0));
    // The ingest waits for this lock (one ingest at a time): its connection is ended while it waits, deterministically mid-command.
    const holder = new pg.Client({ connectionString: db });
    await holder.connect();
    try {
      await holder.query('SELECT pg_advisory_lock($1)', [INGEST_LOCK]);
      const ingest = herbdlAsync(['ingest', file, '--db', db, '--no-progress']);
      const waiting = "SELECT pid FROM pg_stat_activity WHERE application_name = 'herbdl' AND wait_event = 'advisory'";
      await until(async () => (await holder.query(waiting)).rows.length === 1, 30_000, 'the ingest to wait for the lock');
      await holder.query(`SELECT pg_terminate_backend(pid) FROM (${waiting}) w`);
      const ended = await ingest;
      expect(ended.status).toBe(4);
      expect(ended.stderr).toMatch(/^herbdl: the ledger's server went away \(.+\); what was committed stays: run the command again once the server is back\n$/);
    } finally {
      await holder.end();
    }
    expect(herbdlJson(['ingest', file, '--db', db, '--no-progress', '--json'])).toMatchObject({ gbifIds: 50, images: 75 });
  });

  it('a worker that meets a server with no connection free waits for one, and finishes once there is', async () => {
    const ws = await pgWorkspace(dir, 'full', rows(85, 120, 10), cluster.url);
    // Every connection the server has but one: the worker opens the ledger and holds it for its heartbeat, and has none for its statements.
    const taken: pg.Client[] = [];
    try {
      for (let i = 0; i < 40; i++) {
        const client = new pg.Client({ connectionString: ws.db });
        const full = await client.connect().then(
          () => false,
          (err: { code?: string }) => err.code === '53300',
        );
        if (full) break;
        taken.push(client);
      }
      expect(taken.length).toBeGreaterThan(1);
      // None free: a command cannot open the ledger, and says what to change.
      const refused = await herbdlAsync(['status', '--db', ws.db]);
      expect(refused.status).toBe(4);
      expect(refused.stderr).toMatch(/^herbdl: postgres:\/\/.*: the server has no connection free \(.+\): each herbdl worker holds up to 7; raise max_connections or start fewer workers\n$/);
      await (taken.pop() as pg.Client).end();
      const worker = ws.worker(['--concurrency', '8', '--per-host', '2', '--lease', '30']);
      const heartbeat = "SELECT 1 FROM pg_stat_activity WHERE application_name = 'herbdl'";
      await until(async () => (await taken[0]!.query(heartbeat)).rows.length === 1, 30_000, 'the worker to open the ledger');
      // Refused meanwhile ("too many clients"), it waits: it is still there, with nothing done.
      await new Promise((r) => setTimeout(r, 2000));
      expect(ws.files()).toEqual([]);
      await Promise.all(taken.splice(0).map((c) => c.end()));
      expect(await worker.exited, worker.stderr()).toBe(0);
      expect(worker.json()).toMatchObject({ idsDone: 120, pending: 0 });
    } finally {
      await Promise.all(taken.map((c) => c.end()));
    }
    await expectConsistentPgTree(ws);
  });
});
