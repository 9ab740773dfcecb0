/**
 * Failures by reason (`status`' errors, by host and code) count the images
 * failed now, each under its latest code: a failure retried and failed again
 * is counted once, not once per retry, on either ledger; a ledger an earlier
 * herbdl let drift is recounted when this one first opens it.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { herbdlAsync, herbdlJson, tempDir } from './helpers/cli.js';
import { imageServers } from './helpers/image-server.js';
import { countIn } from './helpers/counters.js';
import { writeLedger, type StatusJson } from './helpers/ledger.js';
import { MIGRATIONS } from '../src/ledger/sqlite/schema.js';
import { MIGRATIONS as PG_MIGRATIONS } from '../src/ledger/postgres/schema.js';
import { writeMultimedia } from './helpers/multimedia.js';
import { freshDatabase, query } from './helpers/postgres.js';
import type { RunJson } from './helpers/run.js';

describe.each([
  ['SQLite', 100],
  ['PostgreSQL', 101],
])('failures retried and failed again, on a %s ledger', async (ledger, octet) => {
  const [server] = await imageServers(1, octet);
  const dir = tempDir();

  it('are counted once, under their latest code', async () => {
    const paths = Array.from({ length: 3 }, (_, i) => `/gone-${i}.jpg`);
    for (const path of paths) server!.route(path, { kind: 'status', status: 404 });
    const ok = server!.route('/here.jpg', { kind: 'image' });
    const db = ledger === 'SQLite' ? join(dir, 'failures.db') : await freshDatabase('failure_counts');
    herbdlJson(['ingest', writeMultimedia(join(dir, `${ledger}.txt`), [...paths.map((p, i) => [8_800 + i, `${server!.origin}${p}`] as [number, string]), [8_900, ok]]), '--db', db]);
    const run = async (command: string) => {
      const r = await herbdlAsync([command, '--db', db, '--out', join(dir, 'out'), '--allow-private-network', '--json'], { timeoutMs: 60_000 });
      expect(r.status, r.stderr).toBe(0);
      return JSON.parse(r.stdout.trim().split('\n').pop() as string) as RunJson;
    };
    const errors = () => herbdlJson<StatusJson>(['status', '--db', db]).errors;

    expect(await run('run')).toMatchObject({ idsDone: 1, idsFailed: 3 });
    expect(errors()).toEqual({ http_404: 3 });
    // Each retry-failed run had added every failure it retried: 6, then 9.
    for (let round = 0; round < 2; round++) {
      expect(await run('retry-failed')).toMatchObject({ idsFailed: 3 });
      expect(errors()).toEqual({ http_404: 3 });
    }
    // Gone for good now: counted under the new code alone.
    for (const path of paths) server!.route(path, { kind: 'status', status: 410 });
    expect(await run('retry-failed')).toMatchObject({ idsFailed: 3 });
    expect(errors()).toEqual({ http_410: 3 });

    // A ledger an earlier herbdl left so (three retries' worth, and a host still counting gbifIDs no longer parked)
    // is recounted once, when this one first opens it.
    const drifted = ['UPDATE error_counts SET images = 9', 'UPDATE hosts SET blocked_ids = 30'];
    if (ledger === 'SQLite') {
      writeLedger(db, (l) => {
        for (const sql of drifted) l.exec(sql);
        // Back to before the recount (its migration, and those after it, run again).
        const recount = MIGRATIONS.findIndex((m) => m.includes('DELETE FROM error_counts'));
        expect(recount).toBeGreaterThan(0);
        l.pragma(`user_version = ${recount}`);
      });
    } else {
      // Back to before the recount (PostgreSQL's migration 9, MIGRATIONS[8]; those after it run again harmlessly).
      expect(PG_MIGRATIONS[8]).toContain('DELETE FROM error_counts');
      for (const sql of [...drifted, "UPDATE herbdl_meta SET value = '8' WHERE name = 'schema_version'"]) await query(db, sql);
    }
    expect(errors()).toEqual({ http_410: 3 });
    const counted = 'SELECT count(*) AS n FROM hosts WHERE blocked_ids IS NOT NULL';
    expect(await countIn(db, counted)).toBe(0);
  });
});
