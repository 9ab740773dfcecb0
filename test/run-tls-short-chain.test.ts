/**
 * Servers that send their certificate without its intermediate (FIELD-NOTES:
 * herbarium servers with incomplete TLS chains): herbdl completes the chain
 * from the certificate's CA Issuers address, as browsers do, once per
 * address, and trusts it only up to a root it already trusts.
 */
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { lookupWith } from '../src/fetch/dns-lookup.js';
import { MissingIssuers } from '../src/fetch/missing-issuers.js';
import { makeShortChain } from './helpers/certificate.js';
import { herbdlAsync, tempDir } from './helpers/cli.js';
import { sampleJpeg } from './helpers/image-server.js';
import { workspace, type Workspace } from './helpers/run.js';

/** The CA Issuers server, and the hosts whose chains it completes. */
const ISSUERS = '127.0.0.40';
const GOOD = ['127.0.0.41', '127.0.0.42'];
const FORGED = '127.0.0.43';

describe('a server that sends its certificate without the intermediate', async () => {
  const dir = tempDir();
  const jpeg = await sampleJpeg();
  const asked = new Map<string, number>();
  const issuers: HttpServer = createHttpServer((req, res) => {
    asked.set(req.url ?? '', (asked.get(req.url ?? '') ?? 0) + 1);
    const der = req.url === '/good.crt' ? good.intermediateDer : req.url === '/forged.crt' ? forged.forgedDer : undefined;
    if (!der) return void res.writeHead(404).end();
    res.writeHead(200, { 'content-type': 'application/pkix-cert', 'content-length': der.length });
    res.end(der);
  });
  await new Promise<void>((resolve) => issuers.listen(0, ISSUERS, resolve));
  const base = `http://${ISSUERS}:${(issuers.address() as AddressInfo).port}`;
  const good = makeShortChain(dir, GOOD, `${base}/good.crt`, 'good');
  // Its CA Issuers address serves a root of the attacker's own, with the intermediate's name and key.
  const forged = makeShortChain(dir, [FORGED], `${base}/forged.crt`, 'forged');

  const servers: Server[] = [];
  const serve = async (address: string, chain: { key: Buffer; cert: Buffer }) => {
    const server = createServer({ key: chain.key, cert: chain.cert }, (_req, res) => {
      res.writeHead(200, { 'content-type': 'image/jpeg', 'content-length': jpeg.length });
      res.end(jpeg);
    });
    await new Promise<void>((resolve) => server.listen(0, address, resolve));
    servers.push(server);
    return `https://${address}:${(server.address() as AddressInfo).port}`;
  };
  const goodOrigins = await Promise.all(GOOD.map((address) => serve(address, good)));
  const forgedOrigin = await serve(FORGED, forged);
  afterAll(() => Promise.all([...servers, issuers].map((s) => new Promise<void>((resolve) => s.close(() => resolve())))));

  const run = async (ws: Workspace, root: string) => {
    const r = await herbdlAsync(['run', '--db', ws.db, '--out', ws.out, '--allow-private-network', '--json', '--timeout', '5', '--concurrency', '4'], { env: { NODE_EXTRA_CA_CERTS: root } });
    expect(r.status).toBe(0);
    return JSON.parse(r.stdout.trim().split('\n').pop() as string);
  };

  it('completes the chain from the CA Issuers address, fetched once for every host that needs it', async () => {
    const rows = Array.from({ length: 8 }, (_, i) => [9400001 + i, `${goodOrigins[i % GOOD.length]}/${i}.jpg`] as const);
    const ws = workspace(dir, rows);
    asked.clear();
    expect(await run(ws, good.rootPath)).toMatchObject({ idsDone: 8, idsFailed: 0 });
    expect(ws.files().filter((f) => !f.startsWith('.herbdl-tmp'))).toHaveLength(8);
    expect(Object.fromEntries(asked)).toEqual({ '/good.crt': 1 });
  });

  it('trusts a completed chain only up to a root it trusts already', async () => {
    const ws = workspace(dir, [[9400101, `${goodOrigins[0]}/a.jpg`]]);
    // The forged host's root stands in for any root this process does not trust.
    expect(await run(ws, forged.rootPath)).toMatchObject({ idsDone: 0, idsFailed: 1, failures: { tls_error: 1 } });
    expect(ws.files().filter((f) => !f.startsWith('.herbdl-tmp'))).toEqual([]);
  });

  it('asks no CA Issuers address at an address the guard refuses', async () => {
    asked.clear();
    const [hostname, port] = new URL(goodOrigins[0] as string).host.split(':') as [string, string];
    const guarded = new MissingIssuers({ timeoutMs: 5000, lookup: lookupWith(), blocked: (address) => address === ISSUERS });
    expect(await guarded.complete({ hostname, port })).toBeUndefined();
    expect(asked.size).toBe(0);
    const open = new MissingIssuers({ timeoutMs: 5000, lookup: lookupWith(), blocked: () => false });
    process.env.NODE_EXTRA_CA_CERTS = good.rootPath;
    try {
      expect(await open.complete({ hostname, port })).toBeDefined();
    } finally {
      delete process.env.NODE_EXTRA_CA_CERTS;
    }
    expect(Object.fromEntries(asked)).toEqual({ '/good.crt': 1 });
  });

  it('never trusts a root served from a CA Issuers address', async () => {
    const ws = workspace(dir, [[9400201, `${forgedOrigin}/a.jpg`], [9400202, `${forgedOrigin}/b.jpg`]]);
    asked.clear();
    expect(await run(ws, good.rootPath)).toMatchObject({ idsDone: 0, idsFailed: 2, failures: { tls_error: 2 } });
    expect(ws.files().filter((f) => !f.startsWith('.herbdl-tmp'))).toEqual([]);
    expect(asked.get('/forged.crt')).toBe(1);
  });
});
