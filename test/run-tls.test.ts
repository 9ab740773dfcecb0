/** TLS certificates are verified: a self-signed one is refused, never silently trusted; one the user's own authority signed is trusted. */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { herbdlAsync, tempDir } from './helpers/cli.js';
import { sampleJpeg } from './helpers/image-server.js';
import { workspace } from './helpers/run.js';

describe('https', async () => {
  const dir = tempDir();
  const key = join(dir, 'key.pem');
  const cert = join(dir, 'cert.pem');
  const made = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.34', '-addext', 'subjectAltName=IP:127.0.0.34'], { encoding: 'utf8' });
  if (made.status !== 0) throw new Error(`openssl could not make a test certificate: ${made.stderr}`);
  const jpeg = await sampleJpeg();
  const server = createServer({ key: readFileSync(key), cert: readFileSync(cert) }, (_req, res) => {
    res.writeHead(200, { 'content-type': 'image/jpeg', 'content-length': jpeg.length });
    res.end(jpeg);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.34', resolve));
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const origin = `https://127.0.0.34:${(server.address() as AddressInfo).port}`;

  it('refuses a certificate no authority signed, as tls_error', async () => {
    const ws = workspace(dir, [[9300001, `${origin}/a.jpg`]]);
    const { json } = await ws.run(['--timeout', '2']);
    expect(json).toMatchObject({ idsFailed: 1, failures: { tls_error: 1 } });
    expect(ws.files()).toEqual([]);
  });

  it('trusts a certificate signed by an authority the user adds (NODE_EXTRA_CA_CERTS), on every connection', async () => {
    const ws = workspace(dir, [
      [9300002, `${origin}/b.jpg`],
      [9300003, `${origin}/c.jpg`],
      [9300004, `${origin}/d.jpg`],
    ]);
    const r = await herbdlAsync(['run', '--db', ws.db, '--out', ws.out, '--allow-private-network', '--json', '--timeout', '5', '--per-host', '2'], { env: { NODE_EXTRA_CA_CERTS: cert } });
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout.trim().split('\n').pop() as string)).toMatchObject({ idsDone: 3, idsFailed: 0 });
    expect(ws.files().filter((f) => !f.startsWith('.herbdl-tmp'))).toEqual(['930/000/9300002-00.jpg', '930/000/9300003-00.jpg', '930/000/9300004-00.jpg']);
  });
});
