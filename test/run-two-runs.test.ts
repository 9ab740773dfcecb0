/**
 * Two runs on one ledger (an easy mistake with cron or a batch scheduler):
 * the second is refused before it touches anything, naming the first; a
 * holder killed with -9 never blocks the next run; and a run's temporaries
 * are its own, so no start-up sweep removes a live run's files.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, readdirSync, writeFileSync, existsSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { herbdlAsync, tempDir } from './helpers/cli.js';
import { imageServers } from './helpers/image-server.js';
import { writeMultimedia } from './helpers/multimedia.js';
import { expectConsistentTree, startRunAndWaitForFiles, workspace } from './helpers/run.js';

describe('two runs on one ledger', async () => {
  const [a] = await imageServers(1, 34);
  const dir = tempDir();

  function slowRows(prefix: number, count: number): [number, string][] {
    const rows: [number, string][] = [];
    for (let i = 0; i < count; i++) {
      rows.push([prefix * 1000 + i, a!.route(`/two-${prefix}-${i}.jpg`, { kind: 'image', delayMs: 40 })]);
      if (i % 2 === 0) rows.push([prefix * 1000 + i, a!.route(`/two-${prefix}-${i}-b.jpg`, { kind: 'image', delayMs: 40 })]);
    }
    return rows;
  }

  it('a second run, retry-failed or ingest --snapshot is refused at once, naming the holder; the first finishes whole', async () => {
    const ws = workspace(dir, slowRows(61, 300));
    const first = await startRunAndWaitForFiles(ws, 5, ['--per-host', '4']);
    const tempsBefore = readdirSync(join(ws.out, '.herbdl-tmp'));
    for (const command of ['run', 'retry-failed']) {
      const second = await herbdlAsync([command, '--db', ws.db, '--out', ws.out, '--allow-private-network']);
      expect(second.status).toBe(4);
      const lines = second.stderr.trim().split('\n');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(new RegExp(`in use by a run by pid ${first.child.pid} on ${hostname()}, since \\d{4}-`));
    }
    // A snapshot would remove gbifIDs the run holds: refused too, with nothing read into the ledger.
    const snapshot = await herbdlAsync(['ingest', '--snapshot', writeMultimedia(join(dir, 'snap-61.txt'), [[61000, `${a!.origin}/two-61-0.jpg`]]), '--db', ws.db]);
    expect(snapshot.status).toBe(4);
    expect(snapshot.stderr.trim().split('\n')).toEqual([expect.stringMatching(new RegExp(`in use by a run by pid ${first.child.pid} on `))]);
    // The refusal touched nothing: the first run's temp folder is still there.
    expect(readdirSync(join(ws.out, '.herbdl-tmp'))).toEqual(tempsBefore);
    expect(await first.exited).toBe(0);
    expect(JSON.parse(first.stdout())).toMatchObject({ idsDone: 300, idsFailed: 0, pending: 0 });
    expectConsistentTree(ws);
    expect(readdirSync(join(ws.out, '.herbdl-tmp'))).toEqual([]);
  });

  it('a holder killed with -9 does not block the next run, which completes what it left', async () => {
    const ws = workspace(dir, slowRows(62, 300));
    const first = await startRunAndWaitForFiles(ws, 5, ['--per-host', '4']);
    first.child.kill('SIGKILL');
    await first.exited;
    // Its temporaries are still there, in its own folder, until the next run sweeps them.
    expect(readdirSync(join(ws.out, '.herbdl-tmp'))).toEqual([expect.stringMatching(new RegExp(`~${first.child.pid}~`))]);
    const next = await ws.run();
    expect(next.json.pending).toBe(0);
    expect(ws.status().ids).toMatchObject({ total: 300, done: 300 });
    expectConsistentTree(ws);
    expect(readdirSync(join(ws.out, '.herbdl-tmp'))).toEqual([]);
  });

  it('the start-up sweep removes dead runs\' temporaries and never a live process\'s folder', async () => {
    const ws = workspace(dir, [[63001, a!.route('/sweep.jpg', { kind: 'image' })]]);
    const root = join(ws.out, '.herbdl-tmp');
    // A process that has ended: its pid names a dead run.
    const gone = spawn(process.execPath, ['-e', '0']);
    await new Promise((r) => gone.once('exit', r));
    const dead = join(root, `${hostname()}~${gone.pid}~1`);
    // This test's own process stands for a live run of another ledger sharing --out.
    const live = join(root, `${hostname()}~${process.pid}~2`);
    for (const folder of [dead, live]) {
      mkdirSync(folder, { recursive: true });
      writeFileSync(join(folder, '1-0-1.part'), 'a temporary');
    }
    writeFileSync(join(root, 'old-layout.part'), 'left by an older herbdl');
    const { json } = await ws.run();
    expect(json.idsDone).toBe(1);
    expect(existsSync(dead)).toBe(false);
    expect(existsSync(join(root, 'old-layout.part'))).toBe(false);
    expect(readdirSync(live)).toEqual(['1-0-1.part']);
  });
});
