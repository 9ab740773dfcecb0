/**
 * The private-address guard on every redirect hop. A public name is simulated
 * by a lookup that resolves `public.test` to a loopback server (the only
 * servers a test may use); every other name and address goes through the real
 * guard, as in a run without --allow-private-network.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LookupFunction } from 'node:net';
import { Agent } from 'undici';
import { afterAll, describe, expect, it } from 'vitest';
import { PermanentError } from '../src/errors.js';
import { guardedLookup, isBlockedAddress } from '../src/fetch/address-guard.js';
import { fetchImage } from '../src/fetch/fetch-image.js';
import { imageServers } from './helpers/image-server.js';

describe('address guard', async () => {
  const [server] = await imageServers(1, 40);
  const port = new URL(server!.origin).port;
  const publicTest: LookupFunction = (hostname, options, callback) => {
    if (hostname === 'public.test') {
      if ((options as { all?: boolean }).all) return (callback as (e: null, a: { address: string; family: number }[]) => void)(null, [{ address: '127.0.0.40', family: 4 }]);
      return (callback as (e: null, a: string, f: number) => void)(null, '127.0.0.40', 4);
    }
    return guardedLookup(hostname, options, callback);
  };
  const agent = new Agent({ connect: { lookup: publicTest } });
  afterAll(() => agent.close());
  const dir = mkdtempSync(join(tmpdir(), 'herbdl-guard-'));
  const settings = { agent, userAgent: 'herbdl-test', deadlineMs: 5000, maxBytes: 1e6, allowPrivateNetwork: false };

  it('classifies addresses', () => {
    for (const a of ['127.0.0.1', '10.1.2.3', '172.16.0.1', '192.168.1.1', '169.254.169.254', '::1', 'fe80::1', 'fd00:ec2::254', '::ffff:127.0.0.1', '224.0.0.1', '0.0.0.0']) {
      expect([a, isBlockedAddress(a)]).toEqual([a, true]);
    }
    for (const a of ['8.8.8.8', '2001:4860:4860::8888', '193.62.0.1']) expect([a, isBlockedAddress(a)]).toEqual([a, false]);
  });

  it('fetches from a "public" host', async () => {
    server!.route('/img.jpg', { kind: 'image' });
    const r = await fetchImage(`http://public.test:${port}/img.jpg`, join(dir, 'a.part'), settings);
    expect(r.httpStatus).toBe(200);
  });

  it('refuses a redirect to a private IP literal', async () => {
    server!.route('/to-ip', { kind: 'redirect', to: `http://127.0.0.40:${port}/img.jpg` });
    const err = await fetchImage(`http://public.test:${port}/to-ip`, join(dir, 'b.part'), settings).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PermanentError);
    expect((err as PermanentError).code).toBe('blocked_address');
  });

  it('refuses a redirect to a name that resolves to a private address', async () => {
    server!.route('/to-name', { kind: 'redirect', to: `http://localhost:${port}/img.jpg` });
    const err = await fetchImage(`http://public.test:${port}/to-name`, join(dir, 'c.part'), settings).catch((e: unknown) => e);
    expect((err as PermanentError).code).toBe('blocked_address');
  });

  it('refuses the cloud metadata address outright', async () => {
    const err = await fetchImage('http://169.254.169.254/latest/meta-data/', join(dir, 'd.part'), settings).catch((e: unknown) => e);
    expect((err as PermanentError).code).toBe('blocked_address');
  });
});
