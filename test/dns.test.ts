/**
 * Names whose DNS servers never answer (lapsed domains: an export has
 * hundreds) fail as dns_failed without holding up the healthy hosts: lookups
 * never wait in the thread pool the run's files and decodes need.
 *
 * Real DNS: a server on 127.0.0.53:53 in a network and mount namespace of
 * the test's own (unshare, with /etc/resolv.conf bound to name it), the real
 * CLI run inside it (test/helpers/dead-dns.mjs).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { commandAsync, tempDir } from './helpers/cli.js';
import type { StatusJson } from './helpers/ledger.js';
import type { RunJson } from './helpers/run.js';

interface World {
  readonly run: { readonly status: number | null; readonly stderr: string; readonly json?: RunJson };
  readonly status: StatusJson;
  readonly dnsQueries: { readonly answered: number; readonly unanswered: number; readonly nxdomain: number };
  readonly served: readonly number[];
}

async function inWorld(dir: string, hosts: number, healthy: number, dead: number, nx: number, runFlags: string[]): Promise<World> {
  const resolv = join(dir, 'resolv.conf');
  writeFileSync(resolv, 'nameserver 127.0.0.53\n');
  // A site may point a name elsewhere in /etc/hosts: h0.test is DNS's 127.0.1.10, but host 1's address here.
  const hostsFile = join(dir, 'hosts');
  writeFileSync(hostsFile, '127.0.0.1 localhost\n127.0.1.11 h0.test # the mirror\n');
  const script = new URL('./helpers/dead-dns.mjs', import.meta.url).pathname;
  const shell = [
    'set -e',
    'ip link set lo up',
    `mount --bind "${resolv}" /etc/resolv.conf`,
    `mount --bind "${hostsFile}" /etc/hosts`,
    `exec "${process.execPath}" "${script}" "${dir}" ${hosts} ${healthy} ${dead} ${nx} -- ${runFlags.join(' ')}`,
  ].join('\n');
  const r = await commandAsync('unshare', ['--user', '--map-root-user', '--net', '--mount', 'sh', '-c', shell], { timeoutMs: 150_000 });
  if (r.status !== 0) throw new Error(`the namespace's script exited ${r.status}: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop() as string) as World;
}

describe('names whose DNS servers never answer', () => {

  it('fail as dns_failed while the healthy hosts are fetched, and the run ends by itself; /etc/hosts still comes first', async () => {
    // 60 dead names: looked up in the thread pool, 20 s each, they had held its six threads for over three minutes.
    const world = await inWorld(tempDir(), 4, 200, 60, 0, ['--retries', '1', '--concurrency', '32']);
    expect(world.run.status, world.run.stderr).toBe(0);
    expect(world.run.json?.idsDone).toBe(200);
    expect(world.status.ids).toMatchObject({ total: 260, done: 200, failed: 60, pending: 0 });
    expect(world.status.errors).toEqual({ dns_failed: 60 });
    // The dead names were asked (and never answered); the healthy ones once each, kept for a minute, not once a connection.
    expect(world.dnsQueries.unanswered).toBeGreaterThanOrEqual(60);
    expect(world.dnsQueries.answered).toBeLessThanOrEqual(4 * 2 * 2);
    // /etc/hosts comes first, as for the system's lookup: host 0's images went to host 1.
    expect(world.served).toEqual([0, 100, 50, 50]);
  });

  it('a name that does not exist is asked once a minute, not once an attempt', async () => {
    // Each of the 30 is tried three times; asked each time (c-ares, then the system's lookup: A and AAAA each) that was 12 queries a name.
    const world = await inWorld(tempDir(), 4, 40, 0, 30, ['--retries', '3', '--concurrency', '32']);
    expect(world.run.status, world.run.stderr).toBe(0);
    expect(world.status.ids).toMatchObject({ total: 70, done: 40, failed: 30, pending: 0 });
    expect(world.status.errors).toEqual({ dns_failed: 30 });
    expect(world.dnsQueries.nxdomain).toBeGreaterThanOrEqual(30 * 2);
    expect(world.dnsQueries.nxdomain).toBeLessThanOrEqual(30 * 4);
  });
});
