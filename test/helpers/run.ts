/** Sets up a ledger from (gbifID, URL) rows and runs the real CLI against loopback servers. */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { herbdlAsync, herbdlJson, type CliResult } from './cli.js';
import type { StatusJson } from './ledger.js';
import { writeMultimedia } from './multimedia.js';

export interface RunJson {
  idsDone: number;
  idsFailed: number;
  idsSetAside: number;
  images: number;
  shared: number;
  bytes: number;
  failures: Record<string, number>;
  hostsOpened: string[];
  pending: number;
  recovered: number;
}

export interface Workspace {
  readonly db: string;
  readonly out: string;
  run(extra?: string[], command?: string): Promise<CliResult & { json: RunJson }>;
  status(): StatusJson & { errorsByHost: { host: string; code: string; images: number }[]; blockedHosts: { host: string; pending: number }[] };
  files(): string[];
}

let counter = 0;

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
      if (!existsSync(out)) return [];
      return readdirSync(out, { recursive: true, withFileTypes: true })
        .filter((e) => e.isFile())
        .map((e) => join(e.parentPath, e.name).slice(out.length + 1))
        .sort();
    },
  };
}
