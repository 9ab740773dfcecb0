/**
 * The shared ledger answers as the SQLite file does: the same ingest counts,
 * status and export on the real GBIF samples; and it refuses what is not its
 * own in one line.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { herbdl, herbdlJson, tempDir } from './helpers/cli.js';
import { freshDatabase, query, serverUrl } from './helpers/postgres.js';
import { multimediaSamples } from './helpers/samples.js';

describe('a PostgreSQL ledger', () => {
  const dir = tempDir();

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

    const empty = await freshDatabase('empty');
    const none = herbdl(['run', '--db', empty]);
    expect(none.status).toBe(4);
    expect(none.stderr).toMatch(/no ledger here; run 'herbdl ingest/);
  });
});
