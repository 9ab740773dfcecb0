/**
 * An ingest beside a run (README: `ingest` may run beside it). A run's
 * writes wait for the ingest's transaction instead of failing with `database
 * is locked`; and a gbifID the run holds when the ingest gives it another
 * image is not marked done with the images the run had claimed (its new image
 * pending, without a file): it is done once every image it has is stored.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { herbdlAsync, herbdlJson, tempDir } from './helpers/cli.js';
import { imageServers } from './helpers/image-server.js';
import { countIn, pgCounterDrift } from './helpers/counters.js';
import type { IngestJson } from './helpers/ledger.js';
import { writeMultimedia } from './helpers/multimedia.js';
import { freshDatabase, query } from './helpers/postgres.js';
import { expectConsistentPgTree, until } from './helpers/pg-run.js';
import { expectConsistentTree, treeFiles, treePath, type RunJson } from './helpers/run.js';

const [server] = await imageServers(1, 153);
const url = (path: string) => `${server!.origin}/${path}`;

/** An exclusion list of these gbifIDs, one a line. */
function writeIds(path: string, ids: readonly number[]): string {
  writeFileSync(path, ids.join('\n') + '\n');
  return path;
}

/** Done gbifIDs with an image that is neither done nor left out (excluded, removed): each lacks that image's file. */
const INCOMPLETE_DONE = 'SELECT count(*) AS n FROM ids WHERE state = 1 AND EXISTS (SELECT 1 FROM images i WHERE i.gbif_id = ids.gbif_id AND i.state IN (0, 2))';

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

describe.each([['sqlite'], ['postgres']])('an ingest beside a run on a %s ledger', (kind) => {
  const dir = tempDir();

  it('a gbifID that gains an image while the run holds it is done only once that image is stored too', async () => {
    const db = kind === 'sqlite' ? join(dir, 'ledger.db') : await freshDatabase('ingest_beside_run');
    const out = join(dir, `images-${kind}`);
    // The run's request for 9101's image is answered late; while it waits, a second ingest gives 9101 another image.
    server!.route(`/held-${kind}.jpg`, { kind: 'image', delayMs: 1_000 });
    server!.route(`/added-${kind}.jpg`, { kind: 'image' });
    server!.route(`/other-${kind}.jpg`, { kind: 'image' });
    herbdlJson(['ingest', writeMultimedia(join(dir, `first-${kind}.txt`), [[9101, url(`held-${kind}.jpg`)], [9102, url(`other-${kind}.jpg`)]]), '--db', db]);
    const run = herbdlAsync(['run', '--db', db, '--out', out, '--allow-private-network', '--json']);
    await until(() => server!.requests.some((r) => r.path === `/held-${kind}.jpg`), 30_000, 'the held request');
    // Spawned synchronously: the test's server cannot answer the held request before the ingest has ended.
    const added = herbdlJson<IngestJson>(['ingest', writeMultimedia(join(dir, `second-${kind}.txt`), [[9101, url(`added-${kind}.jpg`)]]), '--db', db]);
    expect(added).toMatchObject({ images: 1 });
    const first = await run;
    expect(first.status, first.stderr).toBe(0);
    // Whatever the first run did with 9101, no done gbifID lacks an image.
    expect(await countIn(db, INCOMPLETE_DONE)).toBe(0);
    // The next run (if the first did not) fetches the added image, and 9101 is done with both.
    const second = await herbdlAsync(['run', '--db', db, '--out', out, '--allow-private-network', '--json']);
    expect(second.status, second.stderr).toBe(0);
    const summaries = [first, second].map((r) => JSON.parse(r.stdout.trim().split('\n').pop() as string) as RunJson);
    expect(summaries.reduce((n, s) => n + s.idsDone, 0)).toBe(2);
    expect(server!.requests.filter((r) => r.path === `/added-${kind}.jpg`)).toHaveLength(1);
    expect(existsSync(join(out, treePath(9101, 0))) && existsSync(join(out, treePath(9101, 1)))).toBe(true);
    expect(treeFiles(out).filter((f) => !f.startsWith('.herbdl-tmp'))).toEqual([treePath(9101, 0), treePath(9101, 1), treePath(9102, 0)]);
    if (kind === 'sqlite') expectConsistentTree({ db, out, files: () => treeFiles(out) } as Parameters<typeof expectConsistentTree>[0]);
    else await expectConsistentPgTree({ db, out, files: () => treeFiles(out).filter((f) => !f.startsWith('.herbdl-tmp')) } as Parameters<typeof expectConsistentPgTree>[0]);
  });
});

describe('an ingest beside a worker on a PostgreSQL ledger', () => {
  const dir = tempDir();

  it('waits for a worker recording a gbifID done, then reopens it: the worker read its images before the ingest committed', async () => {
    const db = await freshDatabase('ingest_beside_worker');
    const out = join(dir, 'images');
    server!.route('/race-0.jpg', { kind: 'image' });
    server!.route('/race-1.jpg', { kind: 'image' });
    herbdlJson(['ingest', writeMultimedia(join(dir, 'race-first.txt'), [[9301, url('race-0.jpg')]]), '--db', db]);
    // The worker's transaction that records 9301 done sleeps as it writes the image's outcome: it has locked
    // 9301's row and read its images, and not yet marked it done. The ingest of a new image of 9301 comes then:
    // nothing it did before waited for that lock, and its reopen found 9301 pending and passed it by.
    await query(
      db,
      `CREATE FUNCTION test_slow_outcome() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(3); RETURN NEW; END $$;
       CREATE TRIGGER test_slow_outcome BEFORE UPDATE ON images FOR EACH ROW WHEN (OLD.gbif_id = 9301 AND NEW.state = 1) EXECUTE FUNCTION test_slow_outcome()`,
    );
    const run = herbdlAsync(['run', '--db', db, '--out', out, '--allow-private-network', '--json']);
    const sleeping = async () => (await query(db, "SELECT 1 FROM pg_stat_activity WHERE wait_event = 'PgSleep' AND query LIKE 'UPDATE images i SET state = 1%'")).length > 0;
    await until(sleeping, 30_000, 'the worker recording 9301 done');
    const added = await herbdlAsync(['ingest', writeMultimedia(join(dir, 'race-second.txt'), [[9301, url('race-1.jpg')]]), '--db', db, '--json']);
    expect(added.status, added.stderr).toBe(0);
    expect(JSON.parse(added.stdout)).toMatchObject({ images: 1, reopened: 1 });
    expect((await run).status).toBe(0);
    expect(await countIn(db, INCOMPLETE_DONE)).toBe(0);
    await query(db, 'DROP TRIGGER test_slow_outcome ON images');
    const second = await herbdlAsync(['run', '--db', db, '--out', out, '--allow-private-network', '--json']);
    expect(second.status, second.stderr).toBe(0);
    expect(treeFiles(out).filter((f) => !f.startsWith('.herbdl-tmp'))).toEqual([treePath(9301, 0), treePath(9301, 1)]);
    await expectConsistentPgTree({ db, out, files: () => treeFiles(out).filter((f) => !f.startsWith('.herbdl-tmp')) } as Parameters<typeof expectConsistentPgTree>[0]);
  });
});

describe('an exclude beside a worker on a PostgreSQL ledger', () => {
  const dir = tempDir();

  it('counts only what it changed: a gbifID the worker records done while the exclude is under way stays done', async () => {
    const db = await freshDatabase('exclude_beside_worker');
    const out = join(dir, 'exclude-images');
    server!.route('/ex-0.jpg', { kind: 'image', delayMs: 1500 });
    server!.route('/ex-1.jpg', { kind: 'image' });
    herbdlJson(['ingest', writeMultimedia(join(dir, 'ex.txt'), [[9401, url('ex-0.jpg')], [9402, url('ex-1.jpg')]]), '--db', db]);
    // The exclude is held before its first counter moves (a statement trigger on hosts, for a session holding the
    // ingest lock, which an exclude holds and a worker never does), after it has read which listed gbifIDs are pending.
    await query(
      db,
      `CREATE FUNCTION test_hold_exclude() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
         IF EXISTS (SELECT 1 FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'advisory' AND objid = 1751478882) THEN
           PERFORM pg_advisory_xact_lock_shared(4545);
         END IF;
         RETURN NULL; END $$;
       CREATE TRIGGER test_hold_exclude BEFORE UPDATE ON hosts FOR EACH STATEMENT EXECUTE FUNCTION test_hold_exclude()`,
    );
    const holder = new pg.Client({ connectionString: db });
    await holder.connect();
    let run: ReturnType<typeof herbdlAsync> | undefined;
    let excluded: ReturnType<typeof herbdlAsync> | undefined;
    try {
      await holder.query('SELECT pg_advisory_lock(4545)');
      run = herbdlAsync(['run', '--db', db, '--out', out, '--allow-private-network', '--json', '--concurrency', '2']);
      await until(() => server!.requests.some((r) => r.path === '/ex-0.jpg'), 30_000, 'the request for 9401');
      excluded = herbdlAsync(['exclude', writeIds(join(dir, 'ex-list.txt'), [9401]), '--db', db, '--json']);
      await until(async () => (await query(db, "SELECT 1 FROM pg_stat_activity WHERE wait_event = 'advisory' AND application_name = 'herbdl'")).length === 1, 30_000, 'the exclude to be held');
      // Meanwhile the worker's answer comes: it records 9401 done, unless the exclude holds its row.
      await until(async () => (await countIn(db, 'SELECT count(*) AS n FROM ids WHERE gbif_id = 9402 AND state = 1')) === 1, 30_000, '9402 done');
      await new Promise((r) => setTimeout(r, 2500));
    } finally {
      await holder.end();
    }
    const ex = await excluded!;
    expect(ex.status, ex.stderr).toBe(0);
    expect((await run!).status).toBe(0);
    // Before, the exclude made the done 9401 excluded, and counted it moving from pending (its state when read):
    // ids_done said 2 for one done gbifID, and its host's pending count went below zero.
    expect(await pgCounterDrift(db)).toEqual([]);
    const state = (await query<{ state: number }>(db, 'SELECT state FROM ids WHERE gbif_id = 9401'))[0]!.state;
    // Either order is right (done, or excluded and never published), as long as the ledger and the tree agree.
    expect(state === 1 ? treeFiles(out).includes(treePath(9401, 0)) : !treeFiles(out).includes(treePath(9401, 0))).toBe(true);
  });
});
