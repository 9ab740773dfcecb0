/** Runs the real CLI (bin/herbdl, built dist/) as a child process. */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, expect } from 'vitest';
import { sqliteCounterDrift } from './counters.js';
import { readLedger } from './ledger.js';

export const REPO = fileURLToPath(new URL('../..', import.meta.url));
export const BIN = join(REPO, 'bin', 'herbdl');
export const FIXTURES = join(REPO, 'fixtures');

export interface CliResult {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Environment for a child: nothing of the caller's HERBDL_* leaks in. */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('HERBDL_')) env[k] = v;
  return { ...env, ...extra };
}

/** `forged`: the test wrote the ledger's counters by hand (status's own reading of them), so they are not recounted. */
export interface CliOptions {
  cwd?: string;
  env?: Record<string, string>;
  forged?: boolean;
}

export function herbdl(args: string[], options: CliOptions = {}): CliResult {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    cwd: options.cwd ?? REPO,
    env: cleanEnv(options.env),
    encoding: 'utf8',
    timeout: 120_000,
  });
  if (args[0] === 'status' && r.status === 0 && !options.forged) expectTrueCounters(args, options.cwd ?? REPO);
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/**
 * Whenever a test asks a SQLite ledger's status, the counters it read are
 * those of the rows (counters.ts), whatever the test had done before: in one
 * read transaction, so a run going on beside it is seen at one moment.
 * (PostgreSQL ledgers are recounted where their tests check the tree.)
 */
function expectTrueCounters(args: string[], cwd: string): void {
  const at = args.indexOf('--db');
  const db = at >= 0 ? args[at + 1] : undefined;
  if (!db || db.includes('://') || !existsSync(resolve(cwd, db))) return;
  expect(readLedger(resolve(cwd, db), (ledger) => ledger.transaction(() => sqliteCounterDrift(ledger))()), `the counters of ${db}`).toEqual([]);
}

export function herbdlJson<T = Record<string, unknown>>(args: string[], options: CliOptions = {}): T {
  const r = herbdl([...args, '--json'], options);
  if (r.status !== 0) throw new Error(`herbdl ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

export function spawnHerbdl(args: string[], options: { cwd?: string; env?: Record<string, string> } = {}): ChildProcess {
  return spawn(process.execPath, [BIN, ...args], { cwd: options.cwd ?? REPO, env: cleanEnv(options.env), stdio: ['ignore', 'pipe', 'pipe'] });
}

/** A fresh temporary folder, removed when the test file ends. */
export function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'herbdl-test-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * Runs the CLI without blocking this process: needed whenever the test's own
 * HTTP servers must answer it. Killed if it outlives timeoutMs.
 */
export async function herbdlAsync(args: string[], options: { cwd?: string; timeoutMs?: number; env?: Record<string, string> } = {}): Promise<CliResult> {
  return finished(spawnHerbdl(args, options), options.timeoutMs ?? 60_000);
}

/** Runs any program (the CLI under `prlimit`, `unshare`...) without blocking this process; killed if it outlives timeoutMs. */
export async function commandAsync(command: string, args: string[], options: { timeoutMs: number; env?: Record<string, string> }): Promise<CliResult> {
  return finished(spawn(command, args, { env: cleanEnv(options.env), stdio: ['ignore', 'pipe', 'pipe'] }), options.timeoutMs);
}

async function finished(child: ChildProcess, timeoutMs: number): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const status = await new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  clearTimeout(timer);
  return { status, stdout, stderr };
}
