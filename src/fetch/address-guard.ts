/**
 * Refuses loopback, private, link-local, multicast and cloud-metadata
 * addresses. A URL in a public dataset must not reach into the machine's own
 * network, so the check runs on the resolved address (a public name can point
 * inward) at connect time, which covers every redirect hop too.
 */
import { BlockList, isIP, type LookupFunction } from 'node:net';
import { PermanentError } from '../errors.js';
import { lookupWith } from './dns-lookup.js';

const blocked = new BlockList();
for (const [net, prefix] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16], // link-local, with the cloud metadata address 169.254.169.254
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['224.0.0.0', 4], // multicast
  ['240.0.0.0', 4], // reserved and broadcast
] as const) {
  blocked.addSubnet(net, prefix, 'ipv4');
}
for (const [net, prefix] of [
  ['::', 128],
  ['::1', 128],
  ['fc00::', 7], // unique local, with AWS's fd00:ec2::254
  ['fe80::', 10],
  ['ff00::', 8],
] as const) {
  blocked.addSubnet(net, prefix, 'ipv6');
}

export function isBlockedAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 4) return blocked.check(address, 'ipv4');
  if (family === 6) {
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
    if (mapped) return blocked.check(mapped[1] as string, 'ipv4');
    return blocked.check(address, 'ipv6');
  }
  return false;
}

export function blockedAddressError(host: string, address: string): PermanentError {
  return new PermanentError(`${host} resolves to ${address}, a private or local address (use --allow-private-network to allow)`, 'blocked_address');
}

/** A lookup for net.connect that fails when any resolved address is blocked. */
export const guardedLookup: LookupFunction = lookupWith((hostname, addresses) => {
  const bad = addresses.find((a) => isBlockedAddress(a.address));
  return bad ? blockedAddressError(hostname, bad.address) : undefined;
});
