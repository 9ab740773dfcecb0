import { copyFileSync, existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { HerbdlError, InputError, LedgerError, UsageError } from '../src/errors.js';
import { BIN, commandAsync, FIXTURES, herbdl, herbdlJson, tempDir } from './helpers/cli.js';
import type { IngestJson, StatusJson } from './helpers/ledger.js';

const FIXTURE = join(FIXTURES, 'multimedia.txt');

describe('herbdl status', () => {
  const dir = tempDir();
  const db = join(dir, 'status.db');
  herbdlJson(['ingest', FIXTURE, '--db', db]);

  it('a missing ledger is a clear error, and no file is created', () => {
    const missing = join(dir, 'missing.db');
    const r = herbdl(['status', '--db', missing]);
    expect(r.status).toBe(4);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/missing\.db: no ledger here/);
    expect(existsSync(missing)).toBe(false);
  });

  it('a file that is not a ledger is refused', () => {
    const other = join(dir, 'other.db');
    writeFileSync(other, 'this is not sqlite at all, just text '.repeat(200));
    const r = herbdl(['status', '--db', other]);
    expect(r.status).toBe(4);
    expect(r.stderr).toMatch(/other\.db: not a SQLite database/);
  });

  it('a ledger in a folder that cannot be written (read-only media) is refused in one line that says why and what to do', async () => {
    const archived = join(dir, 'archive');
    mkdirSync(archived);
    copyFileSync(db, join(archived, 'status.db'));
    // A read-only bind mount of the folder, in a mount namespace of the command's own (no privilege needed, nothing left mounted).
    const script = `mount --bind "$DIR" "$DIR" && mount -o remount,bind,ro "$DIR" || exit 90; "$NODE" "$BIN" status --db "$DIR/status.db"`;
    const r = await commandAsync('unshare', ['--user', '--map-root-user', '--mount', 'sh', '-c', script], { env: { NODE: process.execPath, BIN, DIR: archived }, timeoutMs: 60_000 });
    expect(r.status, r.stderr).toBe(4);
    expect(r.stderr.trim().split('\n')).toEqual([
      `herbdl: ${join(archived, 'status.db')}: cannot open ledger: its folder cannot be written here (read-only, or another user's), and SQLite keeps its -wal and -shm files beside a ledger even to read it; copy the ledger to a folder you can write, or run as a user who can write there`,
    ]);
    expect(readdirSync(archived)).toEqual(['status.db']);
  });

  it('--hosts limits the host list, busiest first', () => {
    const s = herbdlJson<StatusJson>(['status', '--db', db, '--hosts', '2']);
    expect(s.hosts.map((h) => h.host)).toEqual(['img1.example.org', 'img2.example.org']);
    expect(s.hosts[0]).toEqual({ host: 'img1.example.org', images: 4, pending: 4, done: 0, failed: 0 });
  });

  it('reports failures by reason from the ledger counters', () => {
    // The download engine records failures; here two are written as it will.
    const w = new Database(db);
    w.exec("INSERT INTO error_counts(code, host_id, images) VALUES ('http_404', 1, 2), ('timeout', 2, 1)");
    w.close();
    const s = herbdlJson<StatusJson>(['status', '--db', db], { forged: true });
    expect(s.errors).toEqual({ http_404: 2, timeout: 1 });
    const w2 = new Database(db);
    w2.exec('DELETE FROM error_counts');
    w2.close();
  });

  it('prints a readable table without --json', () => {
    const r = herbdl(['status', '--db', db]);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/gbifIDs\s+total 9\s+pending 9\s+done 0\s+failed 0/);
    expect(r.stdout).toMatch(/img1\.example\.org\s+4\s+4\s+0\s+0/);
    expect(r.stdout).toMatch(/failures: none/);
  });
});

describe('options: flag > HERBDL_* > default', () => {
  const dir = tempDir();

  it('uses HERBDL_DB when no --db is given', () => {
    const summary = herbdlJson<IngestJson>(['ingest', FIXTURE], { cwd: dir, env: { HERBDL_DB: join(dir, 'from-env.db') } });
    expect(summary.images).toBe(12);
    expect(existsSync(join(dir, 'from-env.db'))).toBe(true);
  });

  it('a flag beats the variable', () => {
    herbdlJson(['ingest', FIXTURE, '--db', join(dir, 'from-flag.db')], { cwd: dir, env: { HERBDL_DB: join(dir, 'not-this.db') } });
    expect(existsSync(join(dir, 'from-flag.db'))).toBe(true);
    expect(existsSync(join(dir, 'not-this.db'))).toBe(false);
  });

  it('defaults to herbdl.db in the working directory', () => {
    herbdlJson(['ingest', FIXTURE], { cwd: dir });
    expect(existsSync(join(dir, 'herbdl.db'))).toBe(true);
  });

  it('HERBDL_JSON=1 asks for JSON', () => {
    const r = herbdl(['status'], { cwd: dir, env: { HERBDL_JSON: '1' } });
    expect((JSON.parse(r.stdout) as StatusJson).images.total).toBe(12);
  });

  it('a bad value names the flag or variable and exits 2', () => {
    const flag = herbdl(['status', '--hosts', 'many'], { cwd: dir });
    expect(flag.status).toBe(2);
    expect(flag.stderr).toMatch(/--hosts: expected a whole number, got "many"/);
    const env = herbdl(['status'], { cwd: dir, env: { HERBDL_HOSTS: '-3' } });
    expect(env.status).toBe(2);
    expect(env.stderr).toMatch(/HERBDL_HOSTS: expected a whole number/);
  });

  it('--commit-every takes milliseconds from 1, from the flag or HERBDL_COMMIT_EVERY, and refuses before touching any ledger', () => {
    const db = join(dir, 'commit-every.db');
    const zero = herbdl(['ingest', FIXTURE, '--db', db, '--commit-every', '0'], { cwd: dir });
    expect(zero.status).toBe(2);
    expect(zero.stderr).toMatch(/--commit-every: must be between 1 and 3600000, got 0/);
    const env = herbdl(['ingest', FIXTURE, '--db', db], { cwd: dir, env: { HERBDL_COMMIT_EVERY: 'often' } });
    expect(env.status).toBe(2);
    expect(env.stderr).toMatch(/HERBDL_COMMIT_EVERY: expected a whole number, got "often"/);
    expect(existsSync(db)).toBe(false);
    expect(herbdlJson<IngestJson>(['ingest', FIXTURE, '--db', db], { cwd: dir, env: { HERBDL_COMMIT_EVERY: '5' } }).rowsRead).toBe(30);
  });
});

describe('errors', () => {
  it('carry stable codes and exit codes', () => {
    expect(new InputError('a.txt', 'is empty', 'empty')).toMatchObject({ code: 'empty', exitCode: 3, message: 'a.txt: is empty' });
    expect(new LedgerError('x', 'ledger_missing')).toMatchObject({ code: 'ledger_missing', exitCode: 4 });
    expect(new UsageError('bad')).toMatchObject({ code: 'usage', exitCode: 2 });
  });

  it('instanceof holds across two copies of the module (src and built dist)', async () => {
    // The built copy, by a path the type checker does not follow (dist has no declarations).
    const built = '../dist/errors.js';
    const dist = (await import(built)) as typeof import('../src/errors.js');
    const fromDist = new dist.InputError('a.txt', 'x');
    expect(fromDist).toBeInstanceOf(InputError);
    expect(fromDist).toBeInstanceOf(HerbdlError);
    expect(fromDist).not.toBeInstanceOf(LedgerError);
    expect(new Error('plain')).not.toBeInstanceOf(HerbdlError);
  });
});
