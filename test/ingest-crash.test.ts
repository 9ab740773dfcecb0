/**
 * Interrupting ingest: kill -9 and Ctrl-C at a moment when batches are
 * committed and more are coming. The ledger must stay consistent and a second
 * run must leave it exactly as one uninterrupted ingest would.
 */
import { once } from 'node:events';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import Database from 'better-sqlite3';
import { beforeAll, describe, expect, it } from 'vitest';
// The benchmark's generator: the same realistic shape, at test size.
import { generateMultimedia } from '../bench/gen-multimedia.mjs';
import { herbdl, herbdlJson, spawnHerbdl, tempDir } from './helpers/cli.js';
import type { IngestJson, StatusJson } from './helpers/ledger.js';

const ROWS = 300_000;

function committedImages(db: string): number {
  try {
    const d = new Database(db, { readonly: true, fileMustExist: true, timeout: 50 });
    try {
      return d.prepare('SELECT count(*) FROM images').pluck().get() as number;
    } finally {
      d.close();
    }
  } catch {
    return 0; // not created yet, or the writer holds it this instant
  }
}

/** Starts an ingest and resolves once some batches are committed and it is still running. */
async function ingestUntilCommitted(file: string, db: string) {
  // Commits every 50 ms, so an interruption finds committed rows and more coming.
  const child = spawnHerbdl(['ingest', file, '--db', db, '--json', '--commit-every', '50']);
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
  const exited = once(child, 'exit');
  const deadline = Date.now() + 30_000;
  while (committedImages(db) === 0) {
    if (child.exitCode !== null) throw new Error(`ingest ended (exit ${child.exitCode}) before it could be interrupted: ${stderr}${stdout}`);
    if (Date.now() > deadline) throw new Error('no batch committed within 30 s');
    await new Promise((r) => setTimeout(r, 20));
  }
  expect(child.exitCode).toBeNull();
  return { child, exited, stdout: () => stdout };
}

function distinctPairs(db: string): { images: number; pairs: number; badIndexes: number } {
  const d = new Database(db, { readonly: true });
  try {
    return {
      images: d.prepare('SELECT count(*) FROM images').pluck().get() as number,
      pairs: d.prepare('SELECT count(*) FROM (SELECT DISTINCT gbif_id, url FROM images)').pluck().get() as number,
      badIndexes: d.prepare('SELECT count(*) FROM (SELECT gbif_id FROM images GROUP BY gbif_id HAVING max(image_index) + 1 != count(*) OR count(DISTINCT image_index) != count(*))').pluck().get() as number,
    };
  } finally {
    d.close();
  }
}

describe('interrupted ingest', () => {
  const dir = tempDir();
  const file = join(dir, 'multimedia.txt');
  let reference: StatusJson;

  beforeAll(async () => {
    await generateMultimedia(file, { rows: ROWS, hosts: 50, seed: 7 });
    const db = join(dir, 'reference.db');
    herbdlJson<IngestJson>(['ingest', file, '--db', db]);
    reference = herbdlJson<StatusJson>(['status', '--db', db, '--hosts', '100']);
    expect(reference.images.total).toBeGreaterThan(ROWS * 0.99);
  });

  it('kill -9 mid-ingest, then the same command again, ends as one clean ingest', async () => {
    const db = join(dir, 'killed.db');
    const run = await ingestUntilCommitted(file, db);
    run.child.kill('SIGKILL');
    await run.exited;
    // Consistent and readable right after the kill.
    const between = herbdlJson<StatusJson>(['status', '--db', db, '--hosts', '100']);
    expect(between.images.total).toBeGreaterThan(0);
    expect(between.images.total).toBeLessThan(reference.images.total);
    const again = herbdlJson<IngestJson>(['ingest', file, '--db', db]);
    expect(again.interrupted).toBe(false);
    expect(herbdlJson<StatusJson>(['status', '--db', db, '--hosts', '100'])).toEqual(reference);
    const check = distinctPairs(db);
    expect(check.images).toBe(check.pairs);
    expect(check.badIndexes).toBe(0);
  });

  it('Ctrl-C stops cleanly with exit 130, keeps what was read, and a re-run completes it', async () => {
    const db = join(dir, 'interrupted.db');
    const run = await ingestUntilCommitted(file, db);
    run.child.kill('SIGINT');
    const [code] = await run.exited;
    expect(code).toBe(130);
    const summary = JSON.parse(run.stdout()) as IngestJson;
    expect(summary.interrupted).toBe(true);
    expect(summary.rowsRead).toBeLessThan(ROWS);
    const between = herbdlJson<StatusJson>(['status', '--db', db]);
    expect(between.complete).toBe(true);
    expect(between.images.total).toBe(summary.images);
    herbdlJson<IngestJson>(['ingest', file, '--db', db]);
    expect(herbdlJson<StatusJson>(['status', '--db', db, '--hosts', '100'])).toEqual(reference);
  });

  it('a file that breaks off keeps the rows committed before the break, says so, and the whole file completes it', () => {
    const text = readFileSync(file);
    const gz = gzipSync(text.subarray(0, text.indexOf(10, Math.floor(text.length / 3)) + 1));
    const broken = join(dir, 'broken.txt.gz');
    writeFileSync(broken, gz.subarray(0, Math.floor(gz.length * 0.9)));
    const db = join(dir, 'broken.db');
    const r = herbdl(['ingest', broken, '--db', db, '--commit-every', '1']);
    expect(r.status).toBe(3);
    const said = /truncated gzip stream after row (\d+) \(its first (\d+) rows are in the ledger; ingest the complete file to finish\)/.exec(r.stderr);
    expect(said, r.stderr).not.toBeNull();
    const committedRows = Number(said?.[2]);
    expect(committedRows).toBeGreaterThan(0);
    expect(committedRows).toBeLessThanOrEqual(Number(said?.[1]));
    expect(herbdlJson<StatusJson>(['status', '--db', db]).images.total).toBe(committedRows); // the generator's rows are all distinct images
    herbdlJson<IngestJson>(['ingest', file, '--db', db]);
    expect(herbdlJson<StatusJson>(['status', '--db', db, '--hosts', '100'])).toEqual(reference);
  });
});
