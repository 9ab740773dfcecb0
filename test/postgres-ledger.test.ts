/**
 * The shared ledger answers as the SQLite file does: the same ingest counts,
 * status and export on the real GBIF samples; and it refuses what is not its
 * own in one line.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { INGEST_LOCK } from '../src/ledger/postgres/schema.js';
import { herbdl, herbdlAsync, herbdlJson, tempDir } from './helpers/cli.js';
import { imageServers } from './helpers/image-server.js';
import { writeMultimedia } from './helpers/multimedia.js';
import { freshDatabase, query, serverUrl } from './helpers/postgres.js';
import { until } from './helpers/pg-run.js';
import { multimediaSamples } from './helpers/samples.js';

describe('a PostgreSQL ledger', async () => {
  const dir = tempDir();
  const [host] = await imageServers(1, 61);

  it('gives the same ingest counts, status and export as a SQLite ledger, and a second ingest adds nothing', async () => {
    const files = multimediaSamples().filter((f) => f.endsWith('.gz'));
    const pg = await freshDatabase('parity');
    const sqlite = join(dir, 'parity.db');
    const strip = ({ elapsedMs: _e, rowsPerSecond: _r, db: _d, ...rest }: Record<string, unknown>) => rest;
    const first = herbdlJson(['ingest', ...files, '--db', pg]);
    expect(first).toMatchObject({ interrupted: false });
    expect((first as { images: number }).images).toBeGreaterThan(1000);
    expect(strip(first)).toEqual(strip(herbdlJson(['ingest', ...files, '--db', sqlite])));
    const again = herbdlJson(['ingest', ...files, '--db', pg]);
    expect(again).toMatchObject({ gbifIds: 0, images: 0, duplicates: (first as { images: number }).images + (first as { duplicates: number }).duplicates });
    expect(strip(again)).toEqual(strip(herbdlJson(['ingest', ...files, '--db', sqlite])));
    const status = (db: string) => {
      const { workers: _w, ...rest } = herbdlJson(['status', '--db', db, '--hosts', '100']);
      return rest;
    };
    expect(status(pg)).toEqual(status(sqlite));
    for (const format of ['csv', 'jsonl']) {
      const [a, b] = [join(dir, `pg.${format}`), join(dir, `sqlite.${format}`)];
      expect(herbdl(['export', '--db', pg, '--state', 'all', '--format', format, '--out-file', a]).status).toBe(0);
      expect(herbdl(['export', '--db', sqlite, '--state', 'all', '--format', format, '--out-file', b]).status).toBe(0);
      const exported = readFileSync(a, 'utf8');
      expect(exported.split('\n').length).toBeGreaterThan(10_000);
      expect(exported).toBe(readFileSync(b, 'utf8'));
    }
  });

  it('refuses a server it cannot reach, a database of another program, and a ledger from a newer herbdl, in one line', async () => {
    const unreachable = herbdl(['status', '--db', 'postgres://herbdl@127.0.0.1:1/none']);
    expect(unreachable.status).toBe(4);
    expect(unreachable.stderr.trim().split('\n')).toEqual([expect.stringMatching(/127\.0\.0\.1:1\/none: cannot reach the PostgreSQL server \(ECONNREFUSED\)/)]);

    const missing = new URL(serverUrl());
    missing.pathname = '/no_such_database';
    const noDb = herbdl(['status', '--db', missing.toString()]);
    expect(noDb.status).toBe(4);
    expect(noDb.stderr).toMatch(/no_such_database.*does not exist; create it first/);

    const other = await freshDatabase('other');
    await query(other, 'CREATE TABLE customers (id int)');
    const foreign = herbdl(['ingest', join(dir, 'x.txt'), '--db', other]);
    expect(foreign.status).toBe(4);
    expect(foreign.stderr.trim().split('\n')).toEqual([expect.stringMatching(/holds tables of another program, not a herbdl ledger/)]);
    expect(await query(other, "SELECT count(*)::int AS n FROM pg_tables WHERE schemaname = 'public'")).toEqual([{ n: 1 }]);

    const newer = await freshDatabase('newer');
    herbdlJson(['ingest', multimediaSamples()[0] as string, '--db', newer]);
    await query(newer, "UPDATE herbdl_meta SET value = '999' WHERE name = 'schema_version'");
    const tooNew = herbdl(['status', '--db', newer]);
    expect(tooNew.status).toBe(4);
    expect(tooNew.stderr).toMatch(/ledger schema 999 is newer than this herbdl understands/);

    // A role that may connect but not create tables (PostgreSQL 15 and later grant no CREATE on the public schema to others).
    const locked = await freshDatabase('locked');
    await query(locked, 'DROP ROLE IF EXISTS herbdl_visitor');
    await query(locked, 'CREATE ROLE herbdl_visitor LOGIN');
    await query(locked, 'REVOKE CREATE ON SCHEMA public FROM PUBLIC');
    const visitor = new URL(locked);
    visitor.username = 'herbdl_visitor';
    visitor.password = '';
    const refused = herbdl(['ingest', multimediaSamples()[0] as string, '--db', visitor.toString()]);
    expect(refused.status).toBe(4);
    expect(refused.stderr.trim().split('\n')).toEqual([expect.stringMatching(/herbdl_visitor@.*locked.*: the role may not do what herbdl needs \(permission denied for schema public\): .*grant/)]);
    expect(await query(locked, "SELECT count(*)::int AS n FROM pg_tables WHERE schemaname = 'public'")).toEqual([{ n: 0 }]);

    const empty = await freshDatabase('empty');
    const none = herbdl(['run', '--db', empty]);
    expect(none.status).toBe(4);
    expect(none.stderr).toMatch(/no ledger here; run 'herbdl ingest/);
  });

  it("works under the timeouts a server's administrator may set (statement, lock, idle in transaction): an ingest and a run wait out another's lock, as pg_dump sets them aside", async () => {
    const db = await freshDatabase('timeouts');
    const name = new URL(db).pathname.slice(1);
    for (const setting of ['statement_timeout', 'lock_timeout', 'idle_in_transaction_session_timeout']) await query(db, `ALTER DATABASE ${name} SET ${setting} = '300ms'`);
    const rows = (from: number) => Array.from({ length: 20 }, (_, i) => [from + i, host!.route(`/timeouts-${from + i}.jpg`, { kind: 'image' })] as const);
    herbdlJson(['ingest', writeMultimedia(join(dir, 'timeouts-1.txt'), rows(95_000)), '--db', db]);
    // herbdl's statements of this database waiting on a lock (pg_stat_activity shows the whole cluster, where other test files' wait on locks of their own).
    const waiting = "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'herbdl' AND wait_event_type = 'Lock'";
    // Another ingest holds the ledger's ingest lock: the next ingest, and a first run (which builds the indexes a bulk load left out under the same
    // lock), wait for it, and it is let go only once herbdl has waited longer than the timeouts.
    const holdLock = async () => {
      const other = new pg.Client({ connectionString: db });
      await other.connect();
      await other.query('SELECT pg_advisory_lock($1)', [INGEST_LOCK]);
      return async (waitedFor = true) => {
        try {
          if (waitedFor) await until(async () => (await query(db, waiting)).length > 0, 20_000, 'herbdl waiting for the lock');
          await new Promise((resolve) => setTimeout(resolve, 600));
        } finally {
          await other.end();
        }
      };
    };
    let release = await holdLock();
    const ingest = herbdlAsync(['ingest', writeMultimedia(join(dir, 'timeouts-2.txt'), rows(96_000)), '--db', db, '--json']);
    await release();
    const ingested = await ingest;
    expect(ingested.status, ingested.stderr).toBe(0);
    expect(JSON.parse(ingested.stdout)).toMatchObject({ gbifIds: 20, images: 20 });
    release = await holdLock();
    const run = herbdlAsync(['run', '--db', db, '--out', join(dir, 'timeouts-images'), '--allow-private-network', '--json']);
    await release();
    const ran = await run;
    expect(ran.status, ran.stderr).toBe(0);
    expect(JSON.parse(ran.stdout.trim().split('\n').pop() as string)).toMatchObject({ idsDone: 40 });

    // An administrator who cancels herbdl's statement (pg_cancel_backend) is told in one line, and nothing of it is kept.
    release = await holdLock();
    const cancelled = herbdlAsync(['ingest', writeMultimedia(join(dir, 'timeouts-3.txt'), rows(97_000)), '--db', db]);
    let refused: Awaited<typeof cancelled>;
    try {
      await until(async () => (await query(db, waiting)).length > 0, 20_000, 'the ingest waiting for the lock');
      await query(db, `SELECT pg_cancel_backend(pid) FROM (${waiting}) w`);
      refused = await cancelled;
    } finally {
      await release(false);
    }
    expect(refused.status).toBe(4);
    expect(refused.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^herbdl: the ledger's server cancelled a statement \(pg_cancel_backend, or a timeout set for this role\) \(canceling statement due to user request\); what was committed stays/)]);
    expect(await query(db, 'SELECT count(*)::int AS n FROM ids')).toEqual([{ n: 40 }]);
  });
});
