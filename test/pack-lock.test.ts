/**
 * One pack at a time per set folder: a second pack of the same folder (a
 * job array whose every task ends with the same pack) is refused in one
 * line naming the first, and the first ends as if alone. Deterministic: one
 * stored image is replaced by a named pipe, so the first pack, holding its
 * folder, waits on that image's read until the test writes its bytes. Before
 * the lock, the second pack swept the first's shard being written, and the
 * first failed on its rename (ENOENT).
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { herbdl, herbdlJson, spawnHerbdl, tempDir } from './helpers/cli.js';
import { collection, pipeInPlaceOf, rel } from './helpers/collection.js';

const IDS = 40; // gbifIDs 7,100,000,000 + 13 i, 60 images
const digests = (out: string) =>
  readdirSync(out)
    .filter((f) => f.endsWith('.tar'))
    .sort()
    .map((f) => [f, createHash('sha256').update(readFileSync(join(out, f))).digest('hex')]);
/** As pack --split places a gbifID (README): the first 32 bits of the sha256 of its digits, over 2^32. */
const splitPosition = (id: number) => createHash('sha256').update(String(id)).digest().readUInt32BE(0) / 2 ** 32;

/** Starts a pack and waits until it holds `held` (its holder file is written once the lock is taken). */
async function packHolding(args: string[], held: string) {
  const child = spawnHerbdl(args);
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline && child.exitCode === null && !existsSync(join(held, '.herbdl-pack.holder'))) await new Promise((r) => setTimeout(r, 5));
  expect(existsSync(join(held, '.herbdl-pack.holder'))).toBe(true);
  return { child, ended: async () => ({ status: await exited, stderr }) };
}

describe('one pack at a time per set folder', async () => {
  const dir = tempDir();
  const set = await collection(dir, 'locked', IDS, (i) => 1 + (i % 2));
  const whole = join(dir, 'whole');
  herbdlJson(['pack', '--db', set.db, '--images', set.images, '--out', whole, '--shard-size', '10']);
  const packArgs = (out: string, more: string[] = []) => ['pack', '--db', set.db, '--images', set.images, '--out', out, '--shard-size', '10', ...more];
  const firstImage = join(set.images, rel(7_100_000_000, 0));

  it('refuses a second pack of the same folder in one line naming the first, which then ends as if alone', async () => {
    const out = join(dir, 'shards');
    const pipe = pipeInPlaceOf(firstImage);
    const first = await packHolding(packArgs(out), out);
    const second = herbdl(packArgs(out));
    await pipe.feed();
    const firstEnd = await first.ended();
    pipe.restore();
    expect(second.status).toBe(4);
    expect(second.stderr.trim().split('\n')).toEqual([expect.stringMatching(new RegExp(`shards: in use by a pack by pid ${first.child.pid} on .+, since \\d{4}-.+; one pack at a time per folder \\(wait for it to end, or stop it\\)$`))]);
    expect(firstEnd).toEqual({ status: 0, stderr: '' });
    expect(digests(out)).toEqual(digests(whole));
    expect(readdirSync(out).filter((f) => f.endsWith('.part') || f === '.herbdl-pack.holder')).toEqual([]);
    // Once it has ended, the folder is free: carried on, with nothing new.
    expect(herbdlJson<{ written: number; shards: number }>(packArgs(out))).toMatchObject({ written: 0, shards: 6 });
  });

  it('refuses a second pack of the same splits, and a pack of one split folder while a pack of the splits holds it', async () => {
    const out = join(dir, 'splits');
    // The pipe in the first split packed (val): the first pack holds --out and val while it waits there.
    const inVal = Array.from({ length: IDS }, (_, i) => 7_100_000_000 + 13 * i).find((id) => splitPosition(id) < 0.2) as number;
    const pipe = pipeInPlaceOf(join(set.images, rel(inVal, 0)));
    const first = await packHolding(packArgs(out, ['--split', 'val=20']), join(out, 'val'));
    const again = herbdl(packArgs(out, ['--split', 'val=20']));
    const oneFolder = herbdl(packArgs(join(out, 'val')));
    await pipe.feed();
    const firstEnd = await first.ended();
    pipe.restore();
    expect([again.status, oneFolder.status]).toEqual([4, 4]);
    expect(again.stderr.trim().split('\n')).toEqual([expect.stringMatching(/splits: in use by a pack by pid \d+ on .+; one pack at a time per folder/)]);
    expect(oneFolder.stderr.trim().split('\n')).toEqual([expect.stringMatching(/val: in use by a pack by pid \d+ on .+; one pack at a time per folder/)]);
    expect(firstEnd).toEqual({ status: 0, stderr: '' });
    const images = ['val', 'train'].map((s) => JSON.parse(readFileSync(join(out, s, 'index.json'), 'utf8')).images as number);
    expect(images[0]! + images[1]!).toBe(60);
  });

  it("packs as before where the lock cannot be taken (its file cannot be made), saying nothing the pack's own writes would not", () => {
    const out = join(dir, 'unlockable');
    mkdirSync(join(out, '.herbdl-pack.lock'), { recursive: true });
    const r = herbdl(packArgs(out));
    expect(r).toMatchObject({ status: 0, stderr: '' });
    expect(digests(out)).toEqual(digests(whole));
  });

  it('is free again once a pack holding it is killed with -9', async () => {
    const out = join(dir, 'killed');
    const pipe = pipeInPlaceOf(firstImage);
    const first = await packHolding(packArgs(out), out);
    first.child.kill('SIGKILL');
    await first.ended();
    pipe.restore();
    expect(herbdlJson<{ shards: number }>(packArgs(out)).shards).toBe(6);
    expect(digests(out)).toEqual(digests(whole));
  });
});
