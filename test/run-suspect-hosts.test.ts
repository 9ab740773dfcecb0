/**
 * An export's dead hosts are counted in hundreds, and a run meets a host only
 * when one of its gbifIDs enters the run's window. A host suspected down
 * (nothing but failures, its breaker window running) keeps one gbifID there,
 * its probe; the others wait outside until it opens or answers, so that every
 * host is tried within the first breaker window, not one window after another.
 */
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { tempDir } from './helpers/cli.js';
import { imageServers, sampleJpeg } from './helpers/image-server.js';
import { expectConsistentTree, workspace } from './helpers/run.js';

/** Hosts that take each connection and drop it at once (a dead backend behind a live address), noting when each was first asked. */
async function droppingHosts(count: number, thirdOctet: number) {
  const firstAsked = new Map<string, number>();
  const asked = new Map<string, number>();
  const servers: Server[] = [];
  const origins = await Promise.all(
    Array.from({ length: count }, (_, i) => {
      const address = `127.0.${thirdOctet}.${i + 1}`;
      const server = createServer((socket) => {
        if (!firstAsked.has(address)) firstAsked.set(address, Date.now());
        asked.set(address, (asked.get(address) ?? 0) + 1);
        socket.destroy();
      });
      servers.push(server);
      return new Promise<string>((resolve) => server.listen(0, address, () => resolve(`http://${address}:${(server.address() as { port: number }).port}`)));
    }),
  );
  afterAll(async () => {
    await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  });
  return { origins, firstAsked, asked };
}

/** pino's JSON lines of a run's --log-file. */
function logLines(path: string): { time: number; msg: string; host?: string; putBack?: number }[] {
  return readFileSync(path, 'utf8')
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line));
}

describe('a run beside many dead hosts', async () => {
  const [healthy] = await imageServers(1, 42);
  const dead = await droppingHosts(120, 70);
  const dir = tempDir();

  it('tries every host within the first breaker window, and ends once they have opened', async () => {
    const rows: [number, string][] = [];
    // Four gbifIDs a host, host after host: a window of 64 held 16 hosts, and the next 16 were first asked when those opened.
    dead.origins.forEach((origin, h) => {
      for (let k = 0; k < 4; k++) rows.push([90_000 + h * 10 + k, `${origin}/sheet-${k}.jpg`]);
    });
    for (let i = 0; i < 20; i++) rows.push([99_000 + i, healthy!.route(`/ok-${i}.jpg`, { kind: 'image' })]);
    const ws = workspace(dir, rows);
    const log = join(dir, 'many-dead.log');
    const { json } = await ws.run(['--concurrency', '8', '--per-host', '2', '--retries', '3', '--breaker-threshold', '1000', '--breaker-window', '6', '--log-file', log]);
    expect(json).toMatchObject({ idsDone: 20 });
    expect(json.idsFailed + json.pending).toBe(480);

    const lines = logLines(log);
    const opened = lines.filter((l) => l.msg === 'breaker opened').map((l) => l.time);
    expect(opened.length).toBeGreaterThan(0);
    // Every dead host was asked before the first breaker window ended anywhere.
    expect(dead.firstAsked.size).toBe(120);
    expect(Math.max(...dead.firstAsked.values())).toBeLessThan(Math.min(...opened));
    // A gbifID put back and claimed again is not tried more than --retries times in all.
    expect(Math.max(...dead.asked.values())).toBeLessThanOrEqual(4 * 3);
    expect(lines.some((l) => l.msg.startsWith('host suspected down') && (l.putBack ?? 0) > 0)).toBe(true);
    const status = ws.status();
    expect(status.ids).toMatchObject({ done: 20 });
    expectConsistentTree(ws);
  });
});

describe('a host suspected down that answers again', async () => {
  const jpeg = await sampleJpeg();
  let connections = 0;
  let served = 0;
  // Drops its first four requests, then serves every image.
  const server = createHttpServer((req, res) => {
    if (++connections <= 4) return req.socket.destroy();
    served++;
    res.writeHead(200, { 'content-type': 'image/jpeg', 'content-length': jpeg.length });
    res.end(jpeg);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.43', resolve));
  afterAll(() => new Promise((resolve) => server.close(resolve)));
  const origin = `http://127.0.0.43:${(server.address() as { port: number }).port}`;
  const dir = tempDir();

  it('has the gbifIDs it put back done in the same run, each image fetched once', async () => {
    const rows: [number, string][] = Array.from({ length: 30 }, (_, i) => [95_000 + i, `${origin}/sheet-${i}.jpg`]);
    const ws = workspace(dir, rows);
    const log = join(dir, 'back.log');
    const { json } = await ws.run(['--per-host', '2', '--retries', '6', '--breaker-threshold', '1000', '--breaker-window', '60', '--log-file', log]);
    expect(json).toMatchObject({ idsDone: 30, idsFailed: 0, pending: 0 });
    expect(served).toBe(30);
    expect(logLines(log).some((l) => l.msg.startsWith('host suspected down') && (l.putBack ?? 0) > 0)).toBe(true);
    expectConsistentTree(ws);
  });
});
