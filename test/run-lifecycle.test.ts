/** Breakers, retry-failed, --limit, and runs that are stopped or killed. */
import { existsSync, readdirSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { once } from 'node:events';
import { openLedger } from '../src/ledger/open.js';
import type { Ledger } from '../src/ledger/ledger.js';
import { expectTree } from '../src/store/tree-hold.js';
import { herbdlAsync, spawnHerbdl, tempDir } from './helpers/cli.js';
import { imageServers } from './helpers/image-server.js';
import { doneFiles, expectConsistentTree, startRunAndWaitForFiles, workspace } from './helpers/run.js';

const FAST = ['--timeout', '1', '--retries', '2'];
const DEAD = 'http://127.0.0.39:9';

describe('run lifecycle', async () => {
  const [a] = await imageServers(1, 30);
  const [b] = await imageServers(1, 31);
  const dir = tempDir();

  it('opens a dead host\'s breaker: its IDs stay pending, status shows them blocked, the rest finish', async () => {
    const rows: [number, string][] = [];
    for (let i = 0; i < 6; i++) rows.push([7000 + i, `${DEAD}/${i}.jpg`]);
    for (let i = 0; i < 6; i++) rows.push([7100 + i, a!.route(`/healthy-${i}.jpg`, { kind: 'image' })]);
    const ws = workspace(dir, rows);
    const { json } = await ws.run([...FAST, '--breaker-threshold', '3', '--breaker-cooldown', '600']);
    expect(json).toMatchObject({ idsDone: 6, idsFailed: 0, idsSetAside: 6, pending: 6, hostsOpened: ['127.0.0.39'] });
    const s = ws.status();
    expect(s.ids).toMatchObject({ pending: 6, done: 6, failed: 0 });
    expect(s.blockedHosts).toEqual([expect.objectContaining({ host: '127.0.0.39', pending: 6 })]);
    // While it is open, the next run does not touch it (its gbifIDs are parked behind it) and ends at once.
    const again = await ws.run(FAST);
    expect(again.json).toMatchObject({ idsDone: 0, idsFailed: 0, idsSetAside: 0, pending: 6 });
    expectConsistentTree(ws);
  });

  it('a run whose output pipe was closed (`herbdl run | head`, a log pipe gone) finishes its work and exits 0, without a stack trace', async () => {
    const ws = workspace(dir, [[7150, a!.route('/piped-0.jpg', { kind: 'image' })], [7151, a!.route('/piped-1.jpg', { kind: 'image' })]]);
    const child = spawnHerbdl(['run', '--db', ws.db, '--out', ws.out, '--allow-private-network', '--json']);
    // Closed before the process has started: its summary is written into a pipe nobody reads.
    child.stdout?.destroy();
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    const [code] = (await once(child, 'exit')) as [number];
    expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
    expect(ws.status().ids).toMatchObject({ done: 2, pending: 0 });
    expectConsistentTree(ws);
  });

  it('a URL fetched here for a gbifID not yet published is linked, not fetched again, by a gbifID claimed after that fetch', async () => {
    const shared = a!.route('/soon-shared.jpg', { kind: 'image' });
    // 8000 waits 4 s on its second image, so it is still unpublished when 8200 is claimed, after the 199 between.
    const rows: [number, string][] = [[8000, shared], [8000, b!.route('/slow-second.jpg', { kind: 'image', delayMs: 4000 })]];
    for (let id = 8001; id < 8200; id++) rows.push([id, a!.route(`/between-${id}.jpg`, { kind: 'image' })]);
    rows.push([8200, shared]);
    const ws = workspace(dir, rows);
    const { json } = await ws.run(['--concurrency', '4']);
    expect(json).toMatchObject({ idsDone: 201, idsFailed: 0 });
    expect(a!.count('/soon-shared.jpg')).toBe(1);
    expect(json.shared).toBeGreaterThanOrEqual(1);
    expectConsistentTree(ws);
  });

  it('after the cooldown one probe goes out; success closes the breaker', async () => {
    const flaky = b!.route('/flaky.jpg', { kind: 'sequence', steps: [{ kind: 'status', status: 503 }, { kind: 'status', status: 503 }, { kind: 'image' }] });
    const ws = workspace(dir, [[7201, flaky]]);
    const settings = ['--timeout', '1', '--retries', '5', '--breaker-threshold', '2', '--breaker-cooldown', '1'];
    const first = await ws.run(settings);
    // Two 503s open the breaker: the ID is set aside, pending.
    expect(first.json).toMatchObject({ idsDone: 0, idsSetAside: 1, hostsOpened: ['127.0.0.31'] });
    await new Promise((r) => setTimeout(r, 1100));
    const second = await ws.run(settings);
    expect(second.json).toMatchObject({ idsDone: 1 });
    expect(b!.count('/flaky.jpg')).toBe(3);
    expect(ws.status().blockedHosts).toEqual([]);
  });

  it('a transient failure waits out its backoff; retry-failed takes it up at once', async () => {
    const down = a!.route('/down.jpg', { kind: 'sequence', steps: [{ kind: 'status', status: 502 }, { kind: 'status', status: 502 }, { kind: 'image' }] });
    const gone = a!.route('/gone.jpg', { kind: 'sequence', steps: [{ kind: 'status', status: 404 }, { kind: 'image' }] });
    const ws = workspace(dir, [[7301, down], [7302, gone]]);
    const first = await ws.run(FAST);
    expect(first.json).toMatchObject({ idsFailed: 2, failures: { http_502: 1, http_404: 1 } });
    const second = await ws.run(FAST);
    expect(second.json).toMatchObject({ idsDone: 0, idsFailed: 0 });
    expect(a!.count('/down.jpg')).toBe(2);
    const onlyNotFound = await ws.run(['--error', 'http_404', ...FAST], 'retry-failed');
    expect(onlyNotFound.json).toMatchObject({ idsDone: 1 });
    expect(a!.count('/down.jpg')).toBe(2);
    const rest = await ws.run(['--host', '127.0.0.30', ...FAST], 'retry-failed');
    expect(rest.json).toMatchObject({ idsDone: 1 });
    expect(ws.status().ids).toMatchObject({ done: 2, failed: 0 });
    expect(ws.status().errors).toEqual({});
    expectConsistentTree(ws);
  });

  it('run takes up a transient failure once its backoff has passed, up to --max-attempts', async () => {
    const url = a!.route('/later.jpg', { kind: 'sequence', steps: [{ kind: 'status', status: 500 }, { kind: 'status', status: 500 }, { kind: 'image' }] });
    const ws = workspace(dir, [[7351, url]]);
    expect((await ws.run(FAST)).json).toMatchObject({ idsFailed: 1 });
    const due = (attempts: number) => {
      const d = new Database(ws.db);
      d.prepare('UPDATE ids SET next_attempt_at = 1, attempts = ? WHERE gbif_id = 7351').run(attempts);
      d.close();
    };
    // Due, but already tried as often as --max-attempts allows: left alone.
    due(2);
    expect((await ws.run([...FAST, '--max-attempts', '2'])).json).toMatchObject({ idsDone: 0, idsFailed: 0 });
    expect(a!.count('/later.jpg')).toBe(2);
    due(1);
    expect((await ws.run([...FAST, '--max-attempts', '2'])).json).toMatchObject({ idsDone: 1 });
    expect(ws.status().ids).toMatchObject({ done: 1, failed: 0 });
  });

  it('--limit stops after that many gbifIDs', async () => {
    const rows: [number, string][] = [];
    for (let i = 0; i < 5; i++) rows.push([7400 + i, a!.route(`/limit-${i}.jpg`, { kind: 'image' })]);
    const ws = workspace(dir, rows);
    const { json } = await ws.run(['--limit', '2']);
    expect(json).toMatchObject({ idsDone: 2, pending: 3 });
  });

  function slowRows(prefix: number, count: number): [number, string][] {
    const rows: [number, string][] = [];
    for (let i = 0; i < count; i++) {
      const url = a!.route(`/slow-${prefix}-${i}.jpg`, { kind: 'image', delayMs: 15 });
      rows.push([prefix * 1000 + i, url]);
      if (i % 3 === 0) rows.push([prefix * 1000 + i, a!.route(`/slow-${prefix}-${i}-b.jpg`, { kind: 'image', delayMs: 15 })]);
    }
    return rows;
  }

  it('kill -9 mid-run: the next run resumes and ends consistent, temporaries swept', async () => {
    const ws = workspace(dir, slowRows(81, 400));
    const run = await startRunAndWaitForFiles(ws, 20);
    run.child.kill('SIGKILL');
    await run.exited;
    const resumed = await ws.run();
    expect(resumed.json.pending).toBe(0);
    expect(ws.status().ids).toMatchObject({ total: 400, done: 400, pending: 0, failed: 0 });
    expectConsistentTree(ws);
    expect(readdirSync(join(ws.out, '.herbdl-tmp'))).toEqual([]);
  });

  it('kill -9 mid-run with IIIF manifests: no gbifID half in the tree, and the next run completes each', async () => {
    const rows: [number, string][] = [];
    for (let i = 0; i < 120; i++) {
      const canvases = [0, 1, 2].map((c) => ({
        id: `${a!.origin}/canvas/${i}/${c}`,
        type: 'Canvas',
        items: [{ type: 'AnnotationPage', items: [{ type: 'Annotation', motivation: 'painting', body: { id: a!.route(`/iiif-slow-${i}-${c}.jpg`, { kind: 'image', delayMs: 15 }), type: 'Image' } }] }],
      }));
      rows.push([82000 + i, a!.route(`/iiif-slow-${i}-plain.jpg`, { kind: 'image', delayMs: 15 })]);
      rows.push([82000 + i, a!.route(`/iiif-slow-${i}/manifest`, { kind: 'json', body: JSON.stringify({ type: 'Manifest', items: canvases }) })]);
    }
    const ws = workspace(dir, rows);
    const run = await startRunAndWaitForFiles(ws, 20);
    run.child.kill('SIGKILL');
    await run.exited;
    // Right after the kill: every done gbifID has all its files, and any other file in the
    // tree is named by a publishing intent, which the next start removes.
    const db = new Database(ws.db, { readonly: true });
    const intents = (db.prepare('SELECT paths FROM publishing').pluck().all() as string[]).flatMap((p) => JSON.parse(p) as string[]);
    db.close();
    const tree = ws.files().filter((f) => !f.startsWith('.herbdl-tmp'));
    expect(tree).toEqual(expect.arrayContaining(doneFiles(ws)));
    for (const extra of tree.filter((f) => !doneFiles(ws).includes(f))) expect(intents).toContain(join(ws.out, extra));
    const resumed = await ws.run();
    expect(resumed.json.pending).toBe(0);
    expect(ws.status().ids).toMatchObject({ total: 120, done: 120, pending: 0, failed: 0 });
    expectConsistentTree(ws);
    expect(ws.files().filter((f) => !f.startsWith('.herbdl-tmp'))).toHaveLength(480);
  });

  it('Ctrl-C stops claiming, exits 130, and leaves the rest pending', async () => {
    const ws = workspace(dir, slowRows(82, 400));
    const run = await startRunAndWaitForFiles(ws, 10);
    run.child.kill('SIGINT');
    expect(await run.exited).toBe(130);
    const summary = JSON.parse(run.stdout()) as { idsDone: number; pending: number };
    expect(summary.pending).toBeGreaterThan(0);
    expect(summary.idsDone + summary.pending).toBe(400);
    expectConsistentTree(ws);
    const rest = await ws.run();
    expect(rest.json).toMatchObject({ idsDone: summary.pending, pending: 0 });
    expectConsistentTree(ws);
  });

  it('a second Ctrl-C quits at once, without the summary; the next run completes what it left', async () => {
    // Big sheets keep the clean stop busy (it waits for bodies being validated), so the second Ctrl-C lands during it.
    const big = await sharp({ create: { width: 2400, height: 3600, channels: 3, background: '#000', noise: { type: 'gaussian', mean: 128, sigma: 40 } } }).jpeg().toBuffer();
    const rows: [number, string][] = [];
    for (let i = 0; i < 80; i++) rows.push([83000 + i, a!.route(`/big-${i}.jpg`, { kind: 'image', body: big })]);
    const ws = workspace(dir, rows);
    const run = await startRunAndWaitForFiles(ws, 2);
    let stderr = '';
    run.child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
    run.child.kill('SIGINT');
    const deadline = Date.now() + 10_000;
    while (!stderr.includes('stopping cleanly') && Date.now() < deadline && run.child.exitCode === null) await new Promise((r) => setTimeout(r, 2));
    expect(stderr).toMatch(/stopping cleanly \(Ctrl-C again to quit at once\)/);
    run.child.kill('SIGINT');
    expect(await run.exited).toBe(130);
    // Quit at once: no summary was written.
    expect(run.stdout()).toBe('');
    const rest = await ws.run();
    expect(rest.json.pending).toBe(0);
    expect(ws.status().ids).toMatchObject({ total: 80, done: 80 });
    expectConsistentTree(ws);
  });

  it('an --out that holds none of the done gbifIDs\' files (a relative path given from elsewhere) is refused in one line, touching nothing; a moved folder is taken', async () => {
    const ws = workspace(dir, [[7300, a!.route('/where-0.jpg', { kind: 'image' })], [7301, a!.route('/where-1.jpg', { kind: 'image' })]]);
    await ws.run();
    const wrong = join(dir, 'not-the-images');
    const fetching = ['--allow-private-network'];
    for (const command of [['run', ...fetching], ['retry-failed', ...fetching], ['recheck', ...fetching], ['derive', '32'], ['prune']]) {
      const r = await herbdlAsync([...command, '--db', ws.db, '--out', wrong]);
      expect(r.status, `${command[0]}: ${r.stderr}`).toBe(2);
      expect(r.stderr.trim().split('\n')).toEqual([`herbdl: --out ${wrong}: 2 gbifIDs of this ledger are done, but this folder holds none of their files; give the folder they were downloaded to (one moved elsewhere is found by what it holds)`]);
      // Before, a run went on and made the folder, and derive found every done gbifID missing.
      expect(existsSync(wrong)).toBe(false);
    }
    const pack = await herbdlAsync(['pack', '--db', ws.db, '--images', wrong, '--out', join(dir, 'where-shards')]);
    expect(pack.status).toBe(2);
    expect(pack.stderr).toMatch(/^herbdl: --images .*not-the-images: 2 gbifIDs of this ledger are done, but this folder holds none of their files/);
    expect(existsSync(join(dir, 'where-shards'))).toBe(false);
    const moved = join(dir, 'moved-images');
    renameSync(ws.out, moved);
    const again = await herbdlAsync(['run', '--db', ws.db, '--out', moved, '--allow-private-network', '--json']);
    expect(again.status, again.stderr).toBe(0);
    expect(readdirSync(join(moved, '730')).length).toBeGreaterThan(0);

    // Workers starting at once on an empty folder: the first gbifIDs are published (files, then the commit) between another's look at
    // the folder and its count of done gbifIDs. The count comes after the files, so the folder looked at again holds them: no refusal.
    const early = join(dir, 'early-images');
    const ledger = await openLedger(ws.db, { create: false });
    try {
      const meanwhile: Ledger = Object.create(ledger, {
        status: { value: (options: { hosts: number }) => (renameSync(moved, early), ledger.status(options)) },
      });
      await expect(expectTree(meanwhile, early)).resolves.toBeUndefined();
    } finally {
      await ledger.close();
    }
  });

  it('a missing ledger is a clear error', async () => {
    const r = await herbdlAsync(['run', '--db', join(dir, 'none.db')]);
    expect(r.status).toBe(4);
    expect(r.stderr).toMatch(/no ledger here/);
    expect(existsSync(join(dir, 'none.db'))).toBe(false);
  });
});

describe('a run killed between renaming files into place and committing', async () => {
  const [a] = await imageServers(1, 32);
  const dir = tempDir();

  it('has the half-published gbifID\'s files removed by the next run', async () => {
    const { mkdirSync, writeFileSync } = await import('node:fs');
    const ws = workspace(dir, [
      [9000001, a!.route('/good.jpg', { kind: 'image' })],
      [9000001, a!.route('/missing.jpg', { kind: 'status', status: 404 })],
    ]);
    // What a kill -9 after the first rename leaves: the intent, and one file in place.
    const partial = join(ws.out, '900', '000', '9000001-00.jpg');
    mkdirSync(join(ws.out, '900', '000'), { recursive: true });
    writeFileSync(partial, 'half of a gbifID');
    mkdirSync(join(ws.out, '.herbdl-tmp'), { recursive: true });
    writeFileSync(join(ws.out, '.herbdl-tmp', 'stale.part'), 'left by a dead run');
    const db = new Database(ws.db);
    db.prepare('INSERT INTO publishing(gbif_id, paths) VALUES (?, ?)').run(9000001, JSON.stringify([partial, join(ws.out, '900', '000', '9000001-01.jpg')]));
    db.close();
    const { json } = await ws.run(FAST);
    expect(json).toMatchObject({ recovered: 1, idsFailed: 1 });
    expect(ws.files()).toEqual([]);
  });
});

describe('what a run shows and logs', async () => {
  const [a] = await imageServers(1, 33);
  const dir = tempDir();

  it('draws a live line on a terminal, writes pino JSON to --log-file, and status says who blocks', async () => {
    const { spawn } = await import('node:child_process');
    const { readFileSync } = await import('node:fs');
    const { BIN } = await import('./helpers/cli.js');
    const rows: [number, string][] = [];
    for (let i = 0; i < 8; i++) rows.push([9100 + i, a!.route(`/tty-${i}.jpg`, { kind: 'image', delayMs: 250 })]);
    for (let i = 0; i < 4; i++) rows.push([9200 + i, `${DEAD}/tty-${i}.jpg`]);
    const ws = workspace(dir, rows);
    const log = join(dir, 'run.log');
    const command = [process.execPath, BIN, 'run', '--db', ws.db, '--out', ws.out, '--allow-private-network', '--per-host', '1', '--breaker-threshold', '2', '--timeout', '1', '--log-file', log]
      .map((x) => `'${x}'`)
      .join(' ');
    const child = spawn('script', ['-qec', command, '/dev/null'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let screen = '';
    child.stdout.on('data', (c: Buffer) => (screen += c.toString()));
    expect(await new Promise((resolve) => child.once('exit', resolve))).toBe(0);
    expect(screen).toMatch(/gbifIDs done \d+ failed \d+ aside \d+ \| \d+ images\/s .*\| hosts cooling \d+ open \d+/);
    expect(screen).toMatch(/breakers opened on 127\.0\.0\.39/);
    const events = readFileSync(log, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { msg: string; host?: string });
    expect(events.map((e) => e.msg)).toEqual(expect.arrayContaining(['run started', 'breaker opened', 'run finished']));
    expect(events.find((e) => e.msg === 'breaker opened')?.host).toBe('127.0.0.39');
    const status = await herbdlAsync(['status', '--db', ws.db]);
    expect(status.stdout).toMatch(/blocked: 1 host with the breaker open[\s\S]*127\.0\.0\.39\s+4 gbifIDs, 4 images pending/);
  });
});
