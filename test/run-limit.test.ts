/**
 * --limit N: a run brings in at most N gbifIDs, counting those an earlier run
 * parked behind a host's open breaker, whether it takes them up (the host
 * has come back) or claims one to probe the host. Those this run parked
 * itself and takes up again are counted once.
 */
import { describe, expect, it } from 'vitest';
import { tempDir } from './helpers/cli.js';
import { imageServers } from './helpers/image-server.js';
import { expectConsistentTree, workspace } from './helpers/run.js';

describe('--limit', async () => {
  const [back, healthy, ...down] = await imageServers(5, 100);
  const dir = tempDir();
  const settings = ['--timeout', '1', '--retries', '3', '--per-host', '2', '--breaker-threshold', '2', '--breaker-window', '1'];
  const paths = (rows: readonly (readonly [number, string])[], host: string) => rows.map(([, url]) => new URL(url)).filter((u) => u.hostname === host).map((u) => u.pathname);

  it('bounds the take-up of gbifIDs an earlier run parked behind a host that has come back', async () => {
    const rows: [number, string][] = [];
    for (let i = 0; i < 12; i++) rows.push([61_000 + i, back!.route(`/limit-back-${i}.jpg`, { kind: 'status', status: 503 })]);
    for (let i = 0; i < 4; i++) rows.push([61_100 + i, healthy!.route(`/limit-ok-${i}.jpg`, { kind: 'image' })]);
    const ws = workspace(dir, rows);
    const cooled = [...settings, '--breaker-cooldown', '1'];
    const first = await ws.run(cooled);
    expect(first.json).toMatchObject({ idsDone: 4, idsFailed: 0, pending: 12, blocked: { [back!.address]: 12 } });
    // The host is back once its cooldown has passed: the next run's probe finds it answering, and it takes the rest up.
    for (const path of paths(rows, back!.address)) back!.route(path, { kind: 'image' });
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const asked = back!.requests.length;
    const limited = await ws.run([...cooled, '--limit', '3']);
    // Without the bound: all 12 probed or taken up, and done.
    expect(limited.json).toMatchObject({ idsDone: 3, idsFailed: 0, pending: 9 });
    expect(back!.requests.length - asked).toBe(3);
    expect((await ws.run(cooled)).json).toMatchObject({ idsDone: 9, pending: 0 });
    expectConsistentTree(ws);
  });

  it('bounds the probes of hosts an earlier run parked gbifIDs behind', async () => {
    const rows: [number, string][] = [];
    for (const [h, server] of down.entries()) for (let i = 0; i < 4; i++) rows.push([62_000 + h * 100 + i, server.route(`/limit-down-${i}.jpg`, { kind: 'status', status: 503 })]);
    const ws = workspace(dir, rows);
    const cooled = [...settings, '--breaker-cooldown', '1'];
    const first = await ws.run(cooled);
    expect(first.json).toMatchObject({ idsDone: 0, idsFailed: 0, pending: 12, blocked: Object.fromEntries(down.map((server) => [server.address, 4])) });
    const asked = down.map((server) => server.requests.length);
    // Their cooldowns pass: the next run probes each host with one of its gbifIDs, unless --limit says fewer.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const limited = await ws.run([...cooled, '--limit', '1']);
    expect(limited.json).toMatchObject({ idsDone: 0, idsFailed: 0, pending: 12 });
    const probed = down.map((server, h) => new Set(server.requests.slice(asked[h]).map((req) => req.path)).size);
    // Without the bound: one gbifID of each host.
    expect(probed.reduce((a, b) => a + b, 0)).toBe(1);
    expect(ws.status().ids).toMatchObject({ pending: 12, done: 0 });
  });
});
