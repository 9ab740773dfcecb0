/**
 * The run's connections: a few per host, reused while a host is busy, and
 * capped in all by what they hold (a TLS one weighs ten plain ones), so
 * thousands of hosts do not mean thousands of idle TLS sockets.
 */
import { createServer, type Server } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { HostClients, TLS_WEIGHT } from '../src/fetch/host-clients.js';
import { connectionBudget } from '../src/fetch/http-client.js';
import { makeCertificate, type Certificate } from './helpers/certificate.js';
import { tempDir } from './helpers/cli.js';

interface Host {
  readonly origin: string;
  readonly server: Server;
  open: number;
  connections: number;
}

/** A host answering 'ok', over TLS with `tls` (a key and certificate). */
async function host(address: string, tls?: Certificate): Promise<Host> {
  const server = tls ? createTlsServer(tls, (_req, res) => res.end('ok')) : createServer((_req, res) => res.end('ok'));
  server.keepAliveTimeout = 60_000;
  const h: Host = { origin: '', server, open: 0, connections: 0 };
  server.on('connection', (s: Socket) => {
    h.open++;
    h.connections++;
    s.on('close', () => h.open--);
  });
  await new Promise<void>((resolve) => server.listen(0, address, resolve));
  return Object.assign(h, { origin: `${tls ? 'https' : 'http'}://${address}:${(server.address() as AddressInfo).port}` });
}

const settle = () => new Promise((r) => setTimeout(r, 100));

describe('HostClients', async () => {
  const hosts = await Promise.all(['127.0.0.54', '127.0.0.55', '127.0.0.56'].map((address) => host(address)));
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

describe('HostClients, plain and TLS connections', async () => {
  const tls = makeCertificate(tempDir(), ['127.0.0.60']);
  const [a, b, c] = await Promise.all(['127.0.0.57', '127.0.0.58', '127.0.0.59'].map((address) => host(address)));
  const secure = await host('127.0.0.60', tls);
  const all = [a, b, c, secure] as Host[];
  // Room for one TLS connection and two plain ones.
  const clients = new HostClients(2, TLS_WEIGHT + 2, { keepAliveTimeout: 60_000, connect: { ca: tls.cert } });
  afterAll(async () => {
    await clients.destroy();
    await Promise.all(all.map((h) => new Promise((r) => h.server.close(r))));
  });
  const get = async (h: Host) => (await clients.request({ origin: h.origin, path: '/', method: 'GET' })).body.text();

  it('counts a TLS connection as TLS_WEIGHT plain ones against the cap', async () => {
    expect(await get(a as Host)).toBe('ok');
    expect(await get(b as Host)).toBe('ok');
    expect(await get(secure)).toBe('ok');
    await settle();
    // Two plain and one TLS: exactly the cap, all kept.
    expect(all.map((h) => h.open)).toEqual([1, 1, 0, 1]);
    expect(await get(c as Host)).toBe('ok');
    await settle();
    // One more plain connection passes it: the oldest idle one goes (counted as one each, four would have fit).
    expect(all.map((h) => h.open)).toEqual([0, 1, 1, 1]);
  });

  it('budgets ten plain connections per request in flight, or one TLS, within half the open-file limit', () => {
    expect(connectionBudget(64, 20_000)).toBe(64 * 4 * TLS_WEIGHT);
    expect(connectionBudget(64, 1024)).toBe(512);
    expect(connectionBudget(1, undefined)).toBe(4 * TLS_WEIGHT);
    expect(connectionBudget(64, 8)).toBe(TLS_WEIGHT);
  });
});
