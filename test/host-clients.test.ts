/**
 * The run's connections: a few per host, reused while a host is busy, and
 * capped in all, so thousands of hosts do not mean thousands of idle sockets.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { HostClients } from '../src/fetch/host-clients.js';

interface Host {
  readonly origin: string;
  readonly server: Server;
  open: number;
  connections: number;
}

async function host(address: string): Promise<Host> {
  const server = createServer((_req, res) => res.end('ok'));
  server.keepAliveTimeout = 60_000;
  const h: Host = { origin: '', server, open: 0, connections: 0 };
  server.on('connection', (s: Socket) => {
    h.open++;
    h.connections++;
    s.on('close', () => h.open--);
  });
  await new Promise<void>((resolve) => server.listen(0, address, resolve));
  return Object.assign(h, { origin: `http://${address}:${(server.address() as AddressInfo).port}` });
}

const settle = () => new Promise((r) => setTimeout(r, 100));

describe('HostClients', async () => {
  const hosts = await Promise.all(['127.0.0.54', '127.0.0.55', '127.0.0.56'].map(host));
  const clients = new HostClients(2, 2, { keepAliveTimeout: 60_000 });
  afterAll(async () => {
    await clients.destroy();
    await Promise.all(hosts.map((h) => new Promise((r) => h.server.close(r))));
  });
  const get = async (h: Host) => (await clients.request({ origin: h.origin, path: '/', method: 'GET' })).body.text();

  it('reuses an idle connection to a host, and opens a second only for a second request at once', async () => {
    const [a] = hosts as [Host];
    expect(await get(a)).toBe('ok');
    expect(await get(a)).toBe('ok');
    expect(a.connections).toBe(1);
    expect(await Promise.all([get(a), get(a)])).toEqual(['ok', 'ok']);
    expect(a.connections).toBe(2);
  });

  it('closes the oldest idle connection once more are open than the cap', async () => {
    const [a, b, c] = hosts as [Host, Host, Host];
    await settle();
    expect(a.open).toBe(2);
    await get(b);
    await get(c);
    await settle();
    // Two open in all: a's went first, the newest stay.
    expect([a.open, b.open, c.open]).toEqual([0, 1, 1]);
    expect(await get(a)).toBe('ok');
  });
});
