/**
 * TLS certificates are verified: a self-signed one is refused, never
 * silently trusted; one signed by an authority the user adds is trusted.
 * A host met again after its connection was closed resumes its TLS session.
 */
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { makeCertificate } from './helpers/certificate.js';
import { herbdlAsync, tempDir } from './helpers/cli.js';
import { sampleJpeg } from './helpers/image-server.js';
import { workspace } from './helpers/run.js';

/** Six hosts, one certificate naming them all. */
const ADDRESSES = ['127.0.0.34', '127.0.0.35', '127.0.0.36', '127.0.0.37', '127.0.0.38', '127.0.0.39'];

describe('https', async () => {
  const dir = tempDir();
  const { key, cert, certPath } = makeCertificate(dir, ADDRESSES, 'rsa');
  const jpeg = await sampleJpeg();
  const handshakes = { full: 0, resumed: 0 };
  const servers: Server[] = [];
  const origins: string[] = [];
  for (const address of ADDRESSES) {
    const server = createServer({ key, cert }, (_req, res) => {
      res.writeHead(200, { 'content-type': 'image/jpeg', 'content-length': jpeg.length });
      res.end(jpeg);
    });
    server.keepAliveTimeout = 60_000;
    server.on('secureConnection', (socket) => (socket.isSessionReused() ? handshakes.resumed++ : handshakes.full++));
    await new Promise<void>((resolve) => server.listen(0, address, resolve));
    servers.push(server);
    origins.push(`https://${address}:${(server.address() as AddressInfo).port}`);
  }
  afterAll(() => Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve())))));

  it('refuses a certificate no authority signed, as tls_error', async () => {
    const ws = workspace(dir, [[9300001, `${origins[0]}/a.jpg`]]);
    const { json } = await ws.run(['--timeout', '2']);
    expect(json).toMatchObject({ idsFailed: 1, failures: { tls_error: 1 } });
    expect(ws.files()).toEqual([]);
  });

  it('trusts a certificate signed by an authority the user adds (NODE_EXTRA_CA_CERTS), and resumes a host\'s TLS session on its next connection', async () => {
    // Twelve images, two rounds over the six hosts, one request at a time: with --concurrency 1 at most
    // four connections stay open, so each host's is closed before the second round comes back to it.
    const rows = Array.from({ length: 12 }, (_, i) => [9300010 + i, `${origins[i % ADDRESSES.length]}/${i}.jpg`] as const);
    const ws = workspace(dir, rows);
    handshakes.full = handshakes.resumed = 0;
    const r = await herbdlAsync(['run', '--db', ws.db, '--out', ws.out, '--allow-private-network', '--json', '--timeout', '5', '--concurrency', '1'], { env: { NODE_EXTRA_CA_CERTS: certPath } });
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout.trim().split('\n').pop() as string)).toMatchObject({ idsDone: 12, idsFailed: 0 });
    expect(ws.files().filter((f) => !f.startsWith('.herbdl-tmp'))).toEqual(rows.map(([id]) => `${String(id).slice(0, 3)}/${String(id).slice(3, 6)}/${id}-00.jpg`).sort());
    // A whole handshake per host, then a resumed one for each host met again.
    expect(handshakes).toEqual({ full: 6, resumed: 6 });
  });
});
