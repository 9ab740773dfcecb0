/**
 * The gbifIDs a worker on a shared ledger sets aside behind open breakers:
 * millions, on an export whose dead hosts are counted in thousands. Setting
 * them aside must cost by the gbifIDs it names, not by everything it holds;
 * parked, no worker may read them again, neither one that joins nor a later
 * run, until a run takes them up to probe a host whose cooldown has passed;
 * and a clean stop must free what a worker holds before anything else.
 */
import { once } from 'node:events';
import { createServer, type AddressInfo } from 'node:net';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { herbdlJson, tempDir } from './helpers/cli.js';
import { pgWorkspace, until } from './helpers/pg-run.js';
import { query } from './helpers/postgres.js';

/** Index entries read from ids' indexes so far, by index, and its rows read by scans of the whole table (`seq`): the server's cumulative statistics. */
async function indexReads(db: string): Promise<Record<string, number>> {
  const rows = await query<{ name: string; n: string }>(
    db,
    "SELECT indexrelname AS name, idx_tup_read AS n FROM pg_stat_user_indexes WHERE relname = 'ids' UNION ALL SELECT 'seq', seq_tup_read FROM pg_stat_user_tables WHERE relname = 'ids'",
  );
  return Object.fromEntries(rows.map((r) => [r.name, Number(r.n)]));
}

/** Waits until no connection but the test's is open on `db`: a backend's statistics are in once it has ended. */
async function sessionsEnded(db: string): Promise<void> {
  const sql = "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND backend_type = 'client backend' AND pid <> pg_backend_pid()";
  await until(async () => (await query<{ n: number }>(db, sql))[0]!.n === 0, 10_000, "the worker's sessions to end");
}

/**
 * A ledger of `count` gbifIDs from `first`, on `deadHosts` hosts of 127.0.`net`.x (from .`hostBase`, nothing
 * listening, their breakers open), and one more, first - 1, on 127.0.`net`.9, which takes connections and never
 * answers: a worker run on it keeps going, the rest set aside. `close` stops the hanging host.
 */
async function asideBehindHanging(dir: string, label: string, at: { net: number; first: number; count: number; deadHosts: number; hostBase: number }) {
  const hangingHost = `127.0.${at.net}.9`;
  const hanging = createServer(() => {});
  hanging.listen(0, hangingHost);
  await once(hanging, 'listening');
  const rows: [number, string][] = [[at.first - 1, `http://${hangingHost}:${(hanging.address() as AddressInfo).port}/never.jpg`]];
  for (let i = 0; i < at.count; i++) rows.push([at.first + i, `http://127.0.${at.net}.${at.hostBase + (i % at.deadHosts)}:9/${i}.jpg`]);
  try {
    const ws = await pgWorkspace(dir, label, rows);
    await query(ws.db, 'UPDATE hosts SET breaker_open_until = $1 WHERE host <> $2', [Date.now() + 3_600_000, hangingHost]);
    return { ws, hangingHost, close: () => hanging.close() };
  } catch (err) {
    hanging.close();
    throw err;
  }
}

/** Waits until the worker has set `gbifId` aside, parked behind its host. */
async function setAside(db: string, gbifId: number): Promise<void> {
  await until(async () => (await query<{ n: number }>(db, 'SELECT count(*)::int AS n FROM ids WHERE gbif_id = $1 AND blocked_host IS NOT NULL', [gbifId]))[0]!.n === 1, 30_000, `gbifID ${gbifId} to be set aside`);
}

/** gbifIDs parked, and gbifIDs some worker holds. */
async function parkedAndHeld(db: string): Promise<{ parked: number; held: number }> {
  const [row] = await query<{ parked: number; held: number }>(db, 'SELECT count(blocked_host)::int AS parked, count(worker_id)::int AS held FROM ids');
  return row!;
}

describe('a worker holding many claims on a shared ledger', () => {
  const dir = tempDir();

  it('sets gbifIDs aside by the gbifIDs it names, not by a read of every claim it holds', async () => {
    // 20,000 gbifIDs on 20 hosts whose breakers an earlier run left open: the run claims each and sets it aside.
    const count = 20_000;
    const rows: [number, string][] = [];
    for (let i = 0; i < count; i++) rows.push([9_100_000 + i, `http://127.0.41.${1 + (i % 20)}:9/${i}.jpg`]);
    const ws = await pgWorkspace(dir, 'held_claims', rows);
    await query(ws.db, 'UPDATE hosts SET breaker_open_until = $1', [Date.now() + 3_600_000]);
    // The statistics stay as the ingest left them (no gbifID claimed), as on a large ledger, where autovacuum's
    // next analyze is millions of changed rows away: the planner then takes any worker's claims for a few rows.
    await query(ws.db, 'ALTER TABLE ids SET (autovacuum_enabled = off)');
    await sessionsEnded(ws.db);
    const before = await indexReads(ws.db);
    const worker = ws.worker(['--concurrency', '16']);
    expect(await worker.exited, worker.stderr()).toBe(0);
    expect(worker.json()).toMatchObject({ idsDone: 0, idsSetAside: count, pending: count });
    await sessionsEnded(ws.db);
    const after = await indexReads(ws.db);
    const read = Object.keys(after).filter((name) => name !== 'seq').reduce((sum, name) => sum + (after[name]! - (before[name] ?? 0)), 0);
    // Each gbifID is met a few times (its claim, its setting aside, the leaderboard's count and the hand back at
    // the end), each meeting a second version of its row, which setting it aside made, until vacuum: about 10
    // index entries each; a statement that walked the worker's claims to find the few it named read them all,
    // each time: 4.8M here, about 240 each.
    expect(read, JSON.stringify({ before, after })).toBeLessThan(15 * count);
  });

  // Its waits are fixed (the holder's sessions reporting, the joiner's stay, the lease running out: about 30 s) before
  // four workers' runs: 46 to 54 s when two suites share the machine, so the suite's 60 s left it no room.
  it('parked gbifIDs are read by no worker, one that joins or a later run, until a host whose cooldown has passed is probed', { timeout: 150_000 }, async () => {
    const count = 20_000;
    const { ws, hangingHost, close } = await asideBehindHanging(dir, 'joins_aside', { net: 43, first: 9_300_000, count, deadHosts: 20, hostBase: 10 });
    try {
      await query(ws.db, 'ALTER TABLE ids SET (autovacuum_enabled = off)');
      const holder = ws.worker(['--concurrency', '4', '--timeout', '60', '--lease', '10']);
      await setAside(ws.db, 9_300_000 + count - 1);
      // The holder holds only what it works on; the rest are parked, held by no one, and counted on their hosts.
      await until(
        async () => herbdlJson<{ workers: { setAside: number }[] }>(['status', '--db', ws.db]).workers[0]?.setAside === count,
        15_000,
        "the holder's heartbeat to say how many it set aside",
      );
      const status = herbdlJson<{ workers: { claimed: number; setAside: number }[]; blockedHosts: { blockedIds?: number }[]; blocked: { hosts: number } }>(['status', '--db', ws.db, '--hosts', '50']);
      expect(status.workers).toEqual([expect.objectContaining({ claimed: 1, setAside: count })]);
      expect(status.blocked.hosts).toBe(20);
      expect(status.blockedHosts.reduce((n, h) => n + (h.blockedIds ?? 0), 0)).toBe(count);
      expect(await parkedAndHeld(ws.db)).toEqual({ parked: count, held: 1 });
      // As autovacuum leaves a large ledger, the row versions from before the setting aside gone (each was an
      // entry of ids_claimable, read once more by the next scan); the holder's statements so far are counted once
      // its idle sessions have reported them.
      await query(ws.db, 'VACUUM ids');
      await new Promise((r) => setTimeout(r, 11_000));
      // What every worker that starts looks for: a publishing intent a dead worker left (on the holder's claim), and the row
      // of a worker killed a week ago, to be removed if it holds nothing.
      await query(ws.db, "INSERT INTO publishing (gbif_id, paths, worker_id) VALUES ($1, '[]', 999999)", [9_300_000 - 1]);
      await query(ws.db, "INSERT INTO workers (machine, pid, since, heartbeat_at, lease_until) VALUES ('gone', 1, 0, 0, herbdl_now() - 8 * 86400000)");
      let before = await indexReads(ws.db);
      // A second worker joins: it goes over the pending gbifIDs, finds none free, and waits while the holder has one
      // in flight, asking now and then. Before, each pass and each ask read the 20,000 set aside.
      const joiner = ws.worker(['--concurrency', '4']);
      await until(async () => (await query<{ n: number }>(ws.db, 'SELECT count(*)::int AS n FROM workers WHERE lease_until > herbdl_now()'))[0]!.n === 2, 10_000, 'the second worker to join');
      await new Promise((r) => setTimeout(r, 5_000));
      joiner.kill('SIGTERM');
      expect(await joiner.exited, joiner.stderr()).toBe(130);
      holder.kill('SIGKILL');
      await holder.exited;
      await sessionsEnded(ws.db);
      let after = await indexReads(ws.db);
      // Every index of ids and whole scans, the leaderboard's count of what each worker holds (the joiner's summary
      // shows it) among them.
      const readsOf = (a: Record<string, number>, b: Record<string, number>) => Object.keys(a).reduce((sum, name) => sum + a[name]! - (b[name] ?? 0), 0);
      expect(readsOf(after, before), JSON.stringify({ before, after })).toBeLessThan(count / 10);
      // Killed, the holder leaves them parked. Once its lease has run out, the next run, every breaker still open,
      // takes up the one it held, undoes the dead worker's intent (the joiner could not: the holder held that
      // gbifID), and ends, having read none of the parked ones. Before, each run claimed and set aside all again.
      await until(async () => (await query<{ n: number }>(ws.db, 'SELECT count(*)::int AS n FROM workers WHERE lease_until > herbdl_now()'))[0]!.n === 0, 20_000, "the holder's lease to run out");
      expect(await parkedAndHeld(ws.db)).toEqual({ parked: count, held: 1 });
      await query(ws.db, 'UPDATE hosts SET breaker_open_until = $1 WHERE host = $2', [Date.now() + 3_600_000, hangingHost]);
      before = await indexReads(ws.db);
      const next = ws.worker(['--concurrency', '4']);
      expect(await next.exited, next.stderr()).toBe(0);
      expect(next.json()).toMatchObject({ idsSetAside: 1, pending: count + 1, recovered: 1 });
      await sessionsEnded(ws.db);
      after = await indexReads(ws.db);
      expect(readsOf(after, before), JSON.stringify({ before, after })).toBeLessThan(count / 10);
      expect(await parkedAndHeld(ws.db)).toEqual({ parked: count + 1, held: 0 });
      expect(await query(ws.db, 'SELECT count(*)::int AS n FROM publishing')).toEqual([{ n: 0 }]);
      expect(await query(ws.db, "SELECT count(*)::int AS n FROM workers WHERE machine = 'gone'")).toEqual([{ n: 0 }]);
      // Their cooldowns pass: the next run, with no other work, probes each host once, with one of its gbifIDs,
      // and sets it aside again when it is refused; the breakers open again, and the rest stay parked, unread.
      await query(ws.db, 'UPDATE hosts SET breaker_open_until = $1 WHERE host <> $2', [Date.now() - 1_000, hangingHost]);
      await sessionsEnded(ws.db);
      const commits = async () => Number((await query<{ n: string }>(ws.db, 'SELECT xact_commit AS n FROM pg_stat_database WHERE datname = current_database()'))[0]!.n);
      const committedBefore = await commits();
      const probing = ws.worker(['--concurrency', '4']);
      expect(await probing.exited, probing.stderr()).toBe(0);
      await sessionsEnded(ws.db);
      // The 20 probes in one claim: the run committed 65 transactions in all, 165 with a claim per probe.
      expect((await commits()) - committedBefore).toBeLessThan(110);
      expect(probing.json()).toMatchObject({ idsSetAside: 20, pending: count + 1 });
      expect(await query(ws.db, 'SELECT count(*)::int AS n FROM hosts WHERE breaker_open_until > $1', [Date.now()])).toEqual([{ n: 21 }]);
      expect(await parkedAndHeld(ws.db)).toEqual({ parked: count + 1, held: 0 });
    } finally {
      close();
    }
  });

  it('a worker whose setting aside loses a deadlock sends it again, and goes on', async () => {
    // 300 gbifIDs behind a host whose breaker is open: the worker claims them and sets them aside, one statement a batch.
    const rows: [number, string][] = [];
    for (let i = 0; i < 300; i++) rows.push([9_400_000 + i, `http://127.0.44.1:9/${i}.jpg`]);
    const ws = await pgWorkspace(dir, 'aside_deadlock', rows);
    await query(ws.db, 'UPDATE hosts SET breaker_open_until = $1', [Date.now() + 3_600_000]);
    // A server checks a waiting statement for a deadlock once, deadlock_timeout after it began to wait, and the one
    // that finds it is ended: the worker's sessions check after 5 s, the test's after a minute, so the worker's statement
    // is the one ended, however late the test (on a loaded machine) closes the circle.
    await query(ws.db, `ALTER DATABASE ${new URL(ws.db).pathname.slice(1)} SET deadlock_timeout = '5s'`);
    // Another transaction (an ingest's, a second worker's outcomes) holds the host's row, which the statement counts its
    // parked gbifIDs on after it has let them go, and then wants one of those gbifIDs: each waits for the other.
    const other = new pg.Client({ connectionString: ws.db });
    await other.connect();
    let worker: ReturnType<typeof ws.worker> | undefined;
    try {
      await other.query("SET deadlock_timeout = '60s'");
      await other.query('BEGIN');
      await other.query("SELECT 1 FROM hosts WHERE host = '127.0.44.1' FOR UPDATE");
      worker = ws.worker(['--concurrency', '4']);
      const waiting = "SELECT pid FROM pg_stat_activity WHERE application_name = 'herbdl' AND wait_event_type = 'Lock' AND query LIKE 'WITH parked AS%'";
      // Asked on a connection of its own: in a transaction, the server answers from the statistics it read first.
      await until(async () => (await query(ws.db, waiting)).length === 1, 30_000, 'the set-aside to wait for the host');
      await other.query('SELECT 1 FROM ids WHERE worker_id IS NOT NULL FOR UPDATE');
      await other.query('COMMIT');
    } finally {
      await other.end();
    }
    expect(await worker.exited, worker.stderr()).toBe(0);
    expect(worker.json()).toMatchObject({ idsDone: 0, idsSetAside: 300, pending: 300 });
    expect(await parkedAndHeld(ws.db)).toEqual({ parked: 300, held: 0 });
    expect(await query(ws.db, "SELECT blocked_ids::int AS n FROM hosts WHERE host = '127.0.44.1'")).toEqual([{ n: 300 }]);
  });

  it('a clean stop frees its claims for the other workers at once, and ends even if it cannot tidy them', async () => {
    const count = 2_000;
    const { ws, hangingHost, close } = await asideBehindHanging(dir, 'stop_frees', { net: 42, first: 9_200_000, count, deadHosts: 4, hostBase: 1 });
    try {
      const worker = ws.worker(['--concurrency', '4', '--timeout', '60']);
      await setAside(ws.db, 9_200_000 + count - 1);
      // Besides the one it has in flight, it holds a window's worth at --concurrency 64 (written here: the first
      // 1,000, claimed and not yet set aside), one of them locked by the test until the worker has ended, so that
      // its tidying of them cannot finish.
      const held = { first: 9_200_000, last: 9_200_999 };
      // Claimed as a claim does: no longer parked, and no longer counted on their hosts.
      await query(
        ws.db,
        `WITH taken AS (
           UPDATE ids SET worker_id = (SELECT max(worker_id) FROM workers), blocked_host = NULL
           FROM (SELECT gbif_id, blocked_host AS was FROM ids WHERE gbif_id BETWEEN $1 AND $2 FOR UPDATE) o WHERE ids.gbif_id = o.gbif_id
           RETURNING o.was, ids.state)
         UPDATE hosts SET blocked_ids = NULLIF(blocked_ids - c.n, 0) FROM (SELECT was, count(*) AS n FROM taken WHERE was IS NOT NULL AND state = 0 GROUP BY was) c
         WHERE hosts.host_id = c.was`,
        [held.first, held.last],
      );
      const last = held.last;
      const lock = new pg.Client({ connectionString: ws.db });
      await lock.connect();
      try {
        await lock.query('BEGIN');
        await lock.query('SELECT 1 FROM ids WHERE gbif_id = $1 FOR NO KEY UPDATE', [last]);
        worker.kill('SIGTERM');
        // Its lease ends first: every claim it holds is free to the others at once, whatever becomes of the
        // tidying (a batch scheduler's SIGKILL follows its SIGTERM within seconds).
        await until(
          async () => (await query<{ n: number }>(ws.db, 'SELECT count(*)::int AS n FROM workers WHERE stopped_at IS NOT NULL AND lease_until <= herbdl_now()'))[0]!.n === 1,
          10_000,
          "the worker's lease to end",
        );
        // And it ends, with its id still on claims it could not clear (pgWorkspace kills a worker after 120 s).
        expect(await worker.exited, worker.stderr()).toBe(130);
        expect((await query<{ n: number }>(ws.db, 'SELECT count(*)::int AS n FROM ids WHERE worker_id IS NOT NULL'))[0]!.n).toBeGreaterThan(500);
      } finally {
        await lock.query('COMMIT');
        await lock.end();
      }
      // The stopped worker holds nothing: status counts none for it, and the next worker takes its gbifIDs up.
      const status = herbdlJson<{ workers: { stopped: boolean; claimed: number }[] }>(['status', '--db', ws.db]);
      expect(status.workers).toEqual([expect.objectContaining({ stopped: true, claimed: 0 })]);
      await query(ws.db, 'UPDATE hosts SET breaker_open_until = $1 WHERE host = $2', [Date.now() + 3_600_000, hangingHost]);
      // A week on, the stopped worker's row goes when the next worker starts, the ids it left on claims notwithstanding.
      await query(ws.db, 'UPDATE workers SET lease_until = herbdl_now() - 8 * 86400000, stopped_at = herbdl_now() - 8 * 86400000');
      const next = ws.worker(['--concurrency', '4']);
      expect(await next.exited, next.stderr()).toBe(0);
      expect(next.json()).toMatchObject({ idsSetAside: 1 + 1_000, pending: count + 1 });
      expect(await query(ws.db, 'SELECT count(*)::int AS n FROM workers WHERE stopped_at < herbdl_now() - 86400000')).toEqual([{ n: 0 }]);
      expect(await parkedAndHeld(ws.db)).toEqual({ parked: count + 1, held: 0 });
    } finally {
      close();
    }
  });
});
