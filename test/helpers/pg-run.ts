/** A PostgreSQL ledger from (gbifID, URL) rows, and worker processes run against it. */
import { join } from 'node:path';
import { expect } from 'vitest';
import { herbdlJson, spawnHerbdl } from './cli.js';
import { writeMultimedia } from './multimedia.js';
import { pgCounterDrift } from './counters.js';
import type { ImageServer } from './image-server.js';
import { freshDatabase, query } from './postgres.js';
import { mismatchedFiles, treeFiles, treePath, type RunJson } from './run.js';

export interface Worker {
  readonly pid: number;
  readonly exited: Promise<number | null>;
  stdout(): string;
  stderr(): string;
  kill(signal: NodeJS.Signals): void;
  /** What a terminal that went away does: its output is gone, then SIGHUP. */
  hangUp(): void;
  /** The run's summary (--json), once it has exited. */
  json(): RunJson;
}

export interface PgWorkspace {
  readonly db: string;
  readonly out: string;
  /** `via`: the ledger's URL as this worker is to reach it (a proxy's), if not `db`. */
  worker(extra?: string[], via?: string): Worker;
  files(): string[];
  doneFiles(): Promise<string[]>;
}

/** `server`: a PostgreSQL server of the test's own (bench/pg-cluster.mjs) instead of the suite's. */
export async function pgWorkspace(dir: string, label: string, rows: readonly (readonly [number, string])[], server?: string): Promise<PgWorkspace> {
  const db = await freshDatabase(label, server);
  const out = join(dir, `${label}-images`);
  herbdlJson(['ingest', writeMultimedia(join(dir, `${label}.txt`), rows), '--db', db]);
  return {
    db,
    out,
    worker(extra = [], via = db) {
      const child = spawnHerbdl(['run', '--db', via, '--out', out, '--allow-private-network', '--json', ...extra]);
      let stdout = '';
      let stderr = '';
      child.stdout?.on('data', (c: Buffer) => (stdout += c.toString()));
      child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
      const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
      const exited = new Promise<number | null>((resolve) =>
        child.once('exit', (code) => {
          clearTimeout(timer);
          resolve(code);
        }),
      );
      return {
        pid: child.pid as number,
        exited,
        stdout: () => stdout,
        stderr: () => stderr,
        kill: (signal) => child.kill(signal),
        hangUp: () => {
          child.stdout?.destroy();
          child.stderr?.destroy();
          child.kill('SIGHUP');
        },
        json: () => JSON.parse(stdout.trim().split('\n').pop() as string) as RunJson,
      };
    },
    files() {
      return treeFiles(out).filter((f) => !f.startsWith('.herbdl-tmp'));
    },
    async doneFiles() {
      return (await doneFilesWithHashes(db)).map(([file]) => file);
    },
  };
}

/** Each file the ledger says a done gbifID has, with the sha256 it recorded for it. */
async function doneFilesWithHashes(db: string): Promise<[string, string | null][]> {
  const rows = await query<{ gbif_id: string; nn: number; sha256: string | null }>(
    db,
    `SELECT i.gbif_id::text AS gbif_id, COALESCE(p.file_index, i.file_index, i.image_index) AS nn, CASE WHEN p.image_id IS NULL THEN i.sha256 ELSE p.sha256 END AS sha256
     FROM images i JOIN ids USING (gbif_id) LEFT JOIN image_parts p ON p.image_id = i.image_id WHERE ids.state = 1`,
  );
  return rows.map(({ gbif_id: id, nn, sha256 }) => [treePath(id, nn), sha256] as [string, string | null]).sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}

/** Every done gbifID has all its files, each with the bytes fetched for its image; nothing else is in the tree. */
export async function expectConsistentPgTree(ws: PgWorkspace): Promise<void> {
  const done = await doneFilesWithHashes(ws.db);
  expect(ws.files()).toEqual(done.map(([file]) => file));
  expect(mismatchedFiles(ws.out, done)).toEqual([]);
  // And status's counters are those of the rows.
  expect(await pgCounterDrift(ws.db)).toEqual([]);
}

/** Waits until `ready` holds, polling; fails after timeoutMs. */
export async function until(ready: () => boolean | Promise<boolean>, timeoutMs = 30_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await ready())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * gbifIDs prefix * 100,000 + i, with 1 + i % `maxImages` images each, spread
 * over the hosts, every answer `delayMs` late (a path of their own per image).
 */
export function spreadRows(hosts: readonly ImageServer[], prefix: number, count: number, delayMs: number, maxImages: number): [number, string][] {
  const out: [number, string][] = [];
  for (let i = 0; i < count; i++) {
    const id = prefix * 100_000 + i;
    for (let n = 0; n < 1 + (i % maxImages); n++) out.push([id, hosts[(i + n) % hosts.length]!.route(`/p${prefix}-${i}-${n}.jpg`, { kind: 'image', delayMs })]);
  }
  return out;
}

/**
 * Another worker, its lease ending `leaseMs` from now (a worker killed with -9 holds its claims that long), that
 * holds `gbifIds`; returns its id. Ending its lease at once (lease_until = 0) lets them go.
 */
export async function heldByAnother(db: string, gbifIds: readonly number[], leaseMs: number): Promise<number> {
  const [other] = await query<{ worker_id: number }>(
    db,
    "INSERT INTO workers (machine, pid, since, heartbeat_at, lease_until) VALUES ('elsewhere', 1, herbdl_now(), herbdl_now(), herbdl_now() + $1) RETURNING worker_id",
    [leaseMs],
  );
  await query(db, 'UPDATE ids SET worker_id = $1 WHERE gbif_id = ANY($2::bigint[])', [other!.worker_id, gbifIds]);
  return other!.worker_id;
}
