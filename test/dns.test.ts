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

interface Names {
  readonly dead?: number;
  readonly nx?: number;
  /** Images at http://mirror:8080/, found only through the search list. */
  readonly searched?: number;
  /** A search list in resolv.conf. */
  readonly search?: string;
}

async function inWorld(dir: string, hosts: number, healthy: number, names: Names, runFlags: string[]): Promise<World> {
  const resolv = join(dir, 'resolv.conf');
  writeFileSync(resolv, `nameserver 127.0.0.53\n${names.search ? `search ${names.search}\n` : ''}`);
  // Debian's default: the system's lookup asks the files, then DNS.
  const nsswitch = join(dir, 'nsswitch.conf');
  writeFileSync(nsswitch, 'hosts: files dns\n');
  // A site may point a name elsewhere in /etc/hosts: h0.test is DNS's 127.0.1.10, but host 1's address here.
  const hostsFile = join(dir, 'hosts');
  writeFileSync(hostsFile, '127.0.0.1 localhost\n127.0.1.11 h0.test # the mirror\n');
  const script = new URL('./helpers/dead-dns.mjs', import.meta.url).pathname;
  const shell = [
    'set -e',
    'ip link set lo up',
    `mount --bind "${resolv}" /etc/resolv.conf`,
    `mount --bind "${hostsFile}" /etc/hosts`,
    `mount --bind "${nsswitch}" /etc/nsswitch.conf`,
    // A hostname with a dot would make its domain a search list.
    'hostname herbdl-test',
    `exec "${process.execPath}" "${script}" "${dir}" ${hosts} ${healthy} ${names.dead ?? 0} ${names.nx ?? 0} ${names.searched ?? 0} -- ${runFlags.join(' ')}`,
  ].join('\n');
  const r = await commandAsync('unshare', ['--user', '--map-root-user', '--net', '--mount', '--uts', 'sh', '-c', shell], { timeoutMs: 150_000 });
  if (r.status !== 0) throw new Error(`the namespace's script exited ${r.status}: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop() as string) as World;
}

describe('names whose DNS servers never answer', () => {

  it('fail as dns_failed while the healthy hosts are fetched, and the run ends by itself; /etc/hosts still comes first', async () => {
    // 60 dead names: looked up in the thread pool, 20 s each, they had held its six threads for over three minutes.
    const world = await inWorld(tempDir(), 4, 200, { dead: 60 }, ['--retries', '1', '--concurrency', '32']);
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

  it('a name that does not exist is asked once a minute, not once an attempt, and of DNS alone when the system knows no more', async () => {
    // Each of the 30 is tried three times; asked each time (c-ares, then the system's lookup: A and AAAA each) that was 12 queries a name.
    const world = await inWorld(tempDir(), 4, 40, { nx: 30 }, ['--retries', '3', '--concurrency', '32']);
    expect(world.run.status, world.run.stderr).toBe(0);
    expect(world.status.ids).toMatchObject({ total: 70, done: 40, failed: 30, pending: 0 });
    expect(world.status.errors).toEqual({ dns_failed: 30 });
    // c-ares's A and AAAA, once: with only files and DNS and no search list, the system's lookup would say the same.
    expect(world.dnsQueries.nxdomain).toBe(30 * 2);
  });

  it('a name only a search list completes is still found: the system is asked what DNS does not know', async () => {
    const world = await inWorld(tempDir(), 4, 20, { nx: 10, searched: 10, search: 'lab.test' }, ['--retries', '1', '--concurrency', '32']);
    expect(world.run.status, world.run.stderr).toBe(0);
    expect(world.status.ids).toMatchObject({ total: 40, done: 30, failed: 10, pending: 0 });
    expect(world.status.errors).toEqual({ dns_failed: 10 });
    // mirror.lab.test is host 0's address; h0.test is host 1's in /etc/hosts.
    expect(world.served).toEqual([10, 10, 5, 5]);
  });
});
