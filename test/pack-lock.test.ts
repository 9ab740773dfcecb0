/**
 * One pack at a time per set folder: a second pack of the same folder (a
 * job array whose every task ends with the same pack) is refused in one
 * line naming the first, and the first ends as if alone. Deterministic: the
 * first is stopped with SIGSTOP once it holds the folder, the second runs
 * whole, then the first goes on. Before the lock, the second swept the
 * first's shard being written, and the first failed on its rename (ENOENT).
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { herbdl, herbdlJson, spawnHerbdl, tempDir } from './helpers/cli.js';
import { collection } from './helpers/collection.js';

const digests = (out: string) =>
  readdirSync(out)
    .filter((f) => f.endsWith('.tar'))
    .sort()
    .map((f) => [f, createHash('sha256').update(readFileSync(join(out, f))).digest('hex')]);

/** Starts a pack and stops it (SIGSTOP) once it holds `held`: its holder file is written just after the lock is taken. */
async function packStoppedHolding(args: string[], held: string) {
  const child = spawnHerbdl(args);
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline && child.exitCode === null && !existsSync(join(held, '.herbdl-pack.holder'))) await new Promise((r) => setTimeout(r, 2));
  child.kill('SIGSTOP');
  expect(existsSync(join(held, '.herbdl-pack.holder'))).toBe(true);
  return {
    pid: child.pid as number,
    goOn: async () => {
      child.kill('SIGCONT');
      const status = await exited;
      return { status, stderr };
    },
  };
}

describe('one pack at a time per set folder', async () => {
  const dir = tempDir();
  const set = await collection(dir, 'locked', 40, (i) => 1 + (i % 2)); // 60 images
  const whole = join(dir, 'whole');
  herbdlJson(['pack', '--db', set.db, '--images', set.images, '--out', whole, '--shard-size', '10']);
  const packArgs = (out: string, more: string[] = []) => ['pack', '--db', set.db, '--images', set.images, '--out', out, '--shard-size', '10', ...more];

  it('refuses a second pack of the same folder in one line naming the first, which then ends as if alone', async () => {
    const out = join(dir, 'shards');
    const first = await packStoppedHolding(packArgs(out), out);
    const second = herbdl(packArgs(out));
    const firstEnd = await first.goOn();
    expect(second.status).toBe(4);
    expect(second.stderr.trim().split('\n')).toEqual([expect.stringMatching(new RegExp(`shards: in use by a pack by pid ${first.pid} on .+, since \\d{4}-.+; one pack at a time per folder \\(wait for it to end, or stop it\\)$`))]);
    expect(firstEnd).toEqual({ status: 0, stderr: '' });
    expect(digests(out)).toEqual(digests(whole));
    expect(readdirSync(out).filter((f) => f.endsWith('.part') || f === '.herbdl-pack.holder')).toEqual([]);
    // Once it has ended, the folder is free: carried on, with nothing new.
    expect(herbdlJson<{ written: number; shards: number }>(packArgs(out))).toMatchObject({ written: 0, shards: 6 });
  });

  it('refuses a second pack of the same splits, and a pack of one split folder while a pack of the splits holds it', async () => {
    const out = join(dir, 'splits');
    const split = ['--split', 'val=20'];
    const first = await packStoppedHolding(packArgs(out, split), join(out, 'val'));
    const again = herbdl(packArgs(out, split));
    const oneFolder = herbdl(packArgs(join(out, 'val')));
    const firstEnd = await first.goOn();
    expect([again.status, oneFolder.status]).toEqual([4, 4]);
    expect(again.stderr).toMatch(/splits: in use by a pack by pid \d+ on /);
    expect(oneFolder.stderr).toMatch(/val: in use by a pack by pid \d+ on /);
    expect(firstEnd.status).toBe(0);
    const images = ['val', 'train'].map((s) => JSON.parse(readFileSync(join(out, s, 'index.json'), 'utf8')).images as number);
    expect(images[0]! + images[1]!).toBe(60);
  });

  it('is free again after a pack holding it is killed with -9', async () => {
    const out = join(dir, 'killed');
    const first = await packStoppedHolding(packArgs(out), out);
    process.kill(first.pid, 'SIGKILL');
    await first.goOn();
    expect(herbdlJson<{ shards: number }>(packArgs(out)).shards).toBe(6);
    expect(digests(out)).toEqual(digests(whole));
  });
});
