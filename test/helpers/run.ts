/** Sets up a ledger from (gbifID, URL) rows and runs the real CLI against loopback servers. */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import Database from 'better-sqlite3';
import { expect } from 'vitest';
import { join } from 'node:path';
import { herbdlAsync, herbdlJson, spawnHerbdl, type CliResult } from './cli.js';
import { readLedger, type StatusJson } from './ledger.js';
import { writeMultimedia } from './multimedia.js';
import { sqliteCounterDrift } from './counters.js';

export interface RunJson {
  idsDone: number;
  idsFailed: number;
  idsSetAside: number;
  retriesPutOff: number;
  images: number;
  shared: number;
  bytes: number;
  failures: Record<string, number>;
  hostsOpened: string[];
  /** gbifIDs set aside on open breakers, by host. */
  blocked: Record<string, number>;
  pending: number;
  recovered: number;
  elapsedMs: number;
}

/** A recheck's summary (--json). */
export interface RecheckJson {
  checked: number;
  notModified: number;
  sameBytes: number;
  changed: number;
  gone: number;
  restored: number;
  later: Record<string, number>;
  bytes: number;
}

export interface Workspace {
  readonly db: string;
  readonly out: string;
  run(extra?: string[], command?: string): Promise<CliResult & { json: RunJson }>;
  status(): StatusJson & { errorsByHost: { host: string; code: string; images: number }[] };
  files(): string[];
}

let counter = 0;

/** Every file under `out`, relative to it, sorted (temporaries included). */
export function treeFiles(out: string): string[] {
  if (!existsSync(out)) return [];
  return readdirSync(out, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name).slice(out.length + 1))
    .sort();
}

export function workspace(dir: string, rows: readonly (readonly [number, string])[]): Workspace {
  const name = `ws${++counter}`;
  const db = join(dir, `${name}.db`);
  const out = join(dir, `${name}-images`);
  herbdlJson(['ingest', writeMultimedia(join(dir, `${name}.txt`), rows), '--db', db]);
  return {
    db,
    out,
    async run(extra = [], command = 'run') {
      const r = await herbdlAsync([command, '--db', db, '--out', out, '--allow-private-network', '--json', ...extra]);
      if (r.status !== 0) throw new Error(`herbdl ${command} exited ${r.status}: ${r.stderr}`);
      const last = r.stdout.trim().split('\n').pop() as string;
      return { ...r, json: JSON.parse(last) as RunJson };
    },
    status() {
      return herbdlJson(['status', '--db', db, '--hosts', '50']);
    },
    files() {
      return treeFiles(out);
    },
  };
}

/** Every done gbifID has all its files (each canvas of an expanded IIIF manifest too); nothing else is in the tree. */
export function expectConsistentTree(ws: Workspace): void {
  const done = doneFilesWithHashes(ws.db);
  expect(ws.files().filter((f) => !f.startsWith('.herbdl-tmp'))).toEqual(done.map(([file]) => file));
  // And each holds the bytes fetched for its image, not another's.
  expect(mismatchedFiles(ws.out, done)).toEqual([]);
  // And status's counters are those of the rows.
  expect(readLedger(ws.db, sqliteCounterDrift)).toEqual([]);
}

/** The files the ledger says done gbifIDs have, relative to --out. */
export function doneFiles(ws: Workspace): string[] {
  return doneFilesWithHashes(ws.db).map(([file]) => file);
}

/** Each file the ledger says a done gbifID has, with the sha256 it recorded for it. */
function doneFilesWithHashes(path: string): [string, string | null][] {
  const db = new Database(path, { readonly: true });
  const rows = db
    .prepare(
      `SELECT i.gbif_id, COALESCE(p.file_index, i.file_index, i.image_index), CASE WHEN p.image_id IS NULL THEN i.sha256 ELSE p.sha256 END FROM images i JOIN ids USING (gbif_id)
       LEFT JOIN image_parts p ON p.image_id = i.image_id WHERE ids.state = 1`,
    )
    .raw()
    .all() as [number, number, string | null][];
  db.close();
  return rows.map(([id, n, sha]) => [treePath(id, n), sha] as [string, string | null]).sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}

export function treePath(id: number | string, n: number): string {
  const s = String(id);
  return `${s.slice(0, 3)}/${s.slice(3, 6)}/${s}-${String(n).padStart(2, '0')}.jpg`;
}

/** Files whose bytes are not those the ledger recorded for their image (its sha256), as `file: recorded != on disk`. */
export function mismatchedFiles(out: string, files: readonly (readonly [string, string | null])[]): string[] {
  const wrong: string[] = [];
  for (const [file, sha] of files) {
    if (sha === null) continue;
    const onDisk = createHash('sha256').update(readFileSync(join(out, file))).digest('hex');
    if (onDisk !== sha) wrong.push(`${file}: ${sha} != ${onDisk}`);
  }
  return wrong;
}

/** Starts `herbdl run` and resolves once it has published minFiles files (to kill or stop it mid-run). */
export async function startRunAndWaitForFiles(ws: Workspace, minFiles: number, extra: string[] = []) {
  const child = spawnHerbdl(['run', '--db', ws.db, '--out', ws.out, '--allow-private-network', '--json', '--concurrency', '16', '--per-host', '16', ...extra]);
  let stdout = '';
  child.stdout?.on('data', (c: Buffer) => (stdout += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const deadline = Date.now() + 30_000;
  while (ws.files().filter((f) => !f.startsWith('.herbdl-tmp')).length < minFiles) {
    if (Date.now() > deadline) throw new Error('run wrote no files in 30 s');
    if (child.exitCode !== null) throw new Error('run ended before it could be interrupted');
    await new Promise((r) => setTimeout(r, 10));
  }
  return { child, exited, stdout: () => stdout };
}
