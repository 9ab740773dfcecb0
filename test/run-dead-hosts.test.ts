/**
 * Dead hosts are the normal case: a run must end by itself when only hosts
 * that refuse or hang hold work, however slowly their cooldowns let failures
 * come, and say which hosts hold how many gbifIDs. A user who knows a host is
 * back takes it up with retry-failed --host.
 */
import { createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { herbdlAsync, tempDir } from './helpers/cli.js';
import { ImageServer, imageServers, sampleJpeg } from './helpers/image-server.js';
import { expectConsistentTree, workspace, type RunJson } from './helpers/run.js';

/** A port on `address` with nothing listening: connections to it are refused (until a server takes it). */
async function refusingPort(address: string): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, address, resolve));
  const port = (probe.address() as { port: number }).port;
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

describe('a run beside dead hosts', async () => {
  const [healthy, hanging] = await imageServers(2, 35);
  const refusing = '127.0.0.37';
  const port = await refusingPort(refusing);
  const dir = tempDir();

  it('ends by itself once only dead hosts hold work, with them named as blocked; retry-failed --host takes one up', async () => {
    const rows: [number, string][] = [];
    for (let i = 0; i < 40; i++) rows.push([3500 + i, healthy!.route(`/ok-${i}.jpg`, { kind: 'image', delayMs: 20 })]);
    for (let i = 0; i < 12; i++) rows.push([3600 + i, hanging!.route(`/hang-${i}.jpg`, { kind: 'hang' })]);
    for (let i = 0; i < 9; i++) rows.push([3700 + i, `http://${refusing}:${port}/gone-${i}.jpg`]);
    // A gbifID with one healthy image and one on the hanging host waits on the hanging one.
    rows.push([3800, healthy!.route('/ok-mixed.jpg', { kind: 'image' })], [3800, hanging!.route('/hang-mixed.jpg', { kind: 'hang' })]);
    const ws = workspace(dir, rows);
    // A threshold no dead host reaches here: only the window can open their breakers.
    const settings = ['--timeout', '1', '--retries', '3', '--per-host', '4', '--breaker-threshold', '1000', '--breaker-cooldown', '600', '--breaker-window', '3'];
    const r = await herbdlAsync(['run', '--db', ws.db, '--out', ws.out, '--allow-private-network', '--json', ...settings], { timeoutMs: 45_000 });
    expect(r.status).toBe(0);
    const json = JSON.parse(r.stdout) as RunJson;
    expect(json).toMatchObject({ idsDone: 40, idsFailed: 0, pending: 22 });
    expect(json.hostsOpened.sort()).toEqual(['127.0.0.36', '127.0.0.37']);
    expect(json.blocked).toEqual({ '127.0.0.36': 13, '127.0.0.37': 9 });
    // The hanging host was not asked again and again while the run waited.
    expect(hanging!.requests.length).toBeLessThanOrEqual(16);

    const status = ws.status();
    expect(status.ids).toMatchObject({ done: 40, pending: 22, failed: 0 });
    expect(status.blockedHosts.map((h) => [h.host, (h as { blockedIds?: number }).blockedIds]).sort()).toEqual([
      ['127.0.0.36', 13],
      ['127.0.0.37', 9],
    ]);
    const text = await herbdlAsync(['status', '--db', ws.db]);
    expect(text.stdout).toMatch(/127\.0\.0\.37\s+9 gbifIDs, 9 images pending/);
    expectConsistentTree(ws);

    // The refusing host comes back; the user says so.
    const back = await new ImageServer(refusing, await sampleJpeg()).listenOn(port);
    for (let i = 0; i < 9; i++) back.route(`/gone-${i}.jpg`, { kind: 'image' });
    try {
      const again = await herbdlAsync(['retry-failed', '--host', refusing, '--db', ws.db, '--out', ws.out, '--allow-private-network', ...settings], { timeoutMs: 45_000 });
      expect(again.status).toBe(0);
      expect(again.stdout).toMatch(/closed the breaker of 127\.0\.0\.37/);
      expect(again.stdout, again.stdout).toMatch(/gbifIDs\s+done 9 /);
      expect(back.requests).toHaveLength(9);
    } finally {
      await back.close();
    }
    const after = ws.status();
    expect(after.ids).toMatchObject({ done: 49, pending: 13 });
    expect(after.blockedHosts.map((h) => h.host)).toEqual(['127.0.0.36']);
    expectConsistentTree(ws);
  });
});
