/**
 * Name lookups that never wait in libuv's thread pool.
 *
 * Node's usual lookup (getaddrinfo) runs in the pool, beside every file
 * write, fsync and image decode of a run. A name whose DNS servers never
 * answer (a lapsed institution's domain, a lame delegation) holds a pool
 * thread for 20 s (glibc: 5 s, twice, for A and for AAAA), and a GBIF
 * export has hundreds of such names: measured with 300 of them among 4,000
 * images on 8 healthy hosts, the run did 48 images in 300 s instead of all
 * 4,000 in 6 s. So names are asked of the DNS servers in /etc/resolv.conf by
 * c-ares (dns.Resolver), on the event loop, with a bounded wait, and kept a
 * minute. /etc/hosts comes first, as for the system's lookup. A name DNS
 * does not know is then looked up the usual way if the system may know it
 * (another source, a search list: systemMayKnowMore), at most two at once,
 * so the pool always has threads for the files.
 *
 * A name that neither knows is kept a minute too, as resolvers keep a
 * negative answer (RFC 2308): a dead host is tried again and again while its
 * breaker window fills, and an export has hundreds of them. Asked each time,
 * their lookups queued two at once behind each other, and a server that
 * drops bursts of queries made each one seconds: measured with 2,000 dead
 * names, a host's third failure came after 190 s instead of 3.
 */
import { lookup as systemLookup, promises as dns, type LookupAddress, type LookupAllOptions } from 'node:dns';
import { readFileSync } from 'node:fs';
import { isIP, type LookupFunction } from 'node:net';
import { hostname as machineName } from 'node:os';
import pLimit from 'p-limit';

/** Per query, twice: a name no server answers for fails in about 5 s, not 20. */
const resolver = new dns.Resolver({ timeout: 2500, tries: 2 });
const KEEP_MS = 60_000;
const known = new Map<string, { readonly addresses: LookupAddress[]; readonly until: number }>();
/** Names no source knows, with the error that said so. */
const unknown = new Map<string, { readonly err: Error; readonly until: number }>();
/** Answers that the name does not exist or has no address (not that a server failed to answer), from c-ares or the system's lookup. */
const NO_SUCH_NAME = new Set(['ENOTFOUND', 'ENODATA', 'EAI_NONAME']);
const noSuchName = (err: NodeJS.ErrnoException): boolean => NO_SUCH_NAME.has(err.code ?? '');

/** Keeps a name no source knows for a minute; returns the error that said so. */
function remembered(hostname: string, err: Error): Error {
  unknown.set(hostname, { err, until: Date.now() + KEEP_MS });
  return err;
}
const systemLookups = pLimit(2);

/** c-ares's answers that mean DNS has no address for the name (it may still be known elsewhere). */
const NOT_IN_DNS = new Set(['ENOTFOUND', 'ENODATA', 'ENONAME', 'ECONNREFUSED', 'EBADRESP', 'ENOTIMP', 'EREFUSED']);

function askSystem(hostname: string): Promise<LookupAddress[]> {
  return systemLookups(
    () =>
      new Promise<LookupAddress[]>((resolve, reject) =>
        systemLookup(hostname, { all: true } as LookupAllOptions, (err, addresses: LookupAddress[]) => (err ? reject(err) : resolve(addresses))),
      ),
  );
}

/**
 * The names /etc/hosts gives, read once: the system's lookup consults it
 * before DNS ("hosts: files dns"), and a site may point a name elsewhere
 * there (a mirror, a proxy), so it comes first here too.
 */
let hostsFile: Map<string, LookupAddress[]> | undefined;

function fromHostsFile(hostname: string): LookupAddress[] | undefined {
  if (!hostsFile) {
    hostsFile = new Map();
    let text = '';
    try {
      text = readFileSync('/etc/hosts', 'utf8');
    } catch {
      // No hosts file: DNS alone.
    }
    for (const line of text.split('\n')) {
      const [address, ...names] = line.replace(/#.*/, '').trim().split(/\s+/);
      const family = address ? isIP(address) : 0;
      if (family === 0) continue;
      for (const name of names) {
        const key = name.toLowerCase();
        hostsFile.set(key, [...(hostsFile.get(key) ?? []), { address: address as string, family }]);
      }
    }
  }
  return hostsFile.get(hostname.toLowerCase());
}

let systemKnowsMore: boolean | undefined;

/**
 * Whether the system's lookup may find a name DNS says does not exist. Not
 * when it consults only /etc/hosts (read above) and DNS ("hosts: files dns",
 * Debian's default), and asks DNS the name as it is: with a search list
 * (resolv.conf's search or domain, LOCALDOMAIN, or a hostname with a dot)
 * glibc tries the name in each search domain too, which c-ares is not asked
 * to. Then NXDOMAIN is the system's answer as well, and asking it again only
 * queues the name behind others, two at once: measured with a server that
 * dropped bursts of queries, a run on 700 dead names spent minutes there.
 */
function systemMayKnowMore(): boolean {
  if (systemKnowsMore !== undefined) return systemKnowsMore;
  const read = (path: string): string | undefined => {
    try {
      return readFileSync(path, 'utf8');
    } catch {
      return undefined;
    }
  };
  // No nsswitch.conf: glibc asks DNS, then the files.
  const hostsLine = /^\s*hosts\s*:(.*)$/m.exec(read('/etc/nsswitch.conf') ?? '')?.[1] ?? 'dns files';
  const sources = hostsLine.replace(/#.*/, '').replace(/\[[^\]]*\]/g, ' ').split(/\s+/).filter(Boolean);
  const searches = /^\s*(search|domain)\s+\S/m.test(read('/etc/resolv.conf') ?? '') || Boolean(process.env.LOCALDOMAIN) || machineName().includes('.');
  systemKnowsMore = sources.some((source) => source !== 'files' && source !== 'dns') || searches;
  return systemKnowsMore;
}

/** Lookups under way: a host's first connections open together, and ask once. */
const asking = new Map<string, Promise<LookupAddress[]>>();

/** Every address of `hostname`, IPv4 first; rejects as getaddrinfo would (a `code` the fetch classifies as dns_failed). */
export function resolveHost(hostname: string): Promise<LookupAddress[]> {
  const family = isIP(hostname);
  if (family !== 0) return Promise.resolve([{ address: hostname, family }]);
  const cached = known.get(hostname);
  if (cached && cached.until > Date.now()) return Promise.resolve(cached.addresses);
  const missing = unknown.get(hostname);
  if (missing && missing.until > Date.now()) return Promise.reject(missing.err);
  let pending = asking.get(hostname);
  if (!pending) {
    pending = ask(hostname).finally(() => asking.delete(hostname));
    asking.set(hostname, pending);
  }
  return pending;
}

async function ask(hostname: string): Promise<LookupAddress[]> {
  const listed = fromHostsFile(hostname);
  if (listed) return [...listed.filter((a) => a.family === 4), ...listed.filter((a) => a.family === 6)];
  const [v4, v6] = await Promise.allSettled([resolver.resolve4(hostname), resolver.resolve6(hostname)]);
  let addresses: LookupAddress[] = [
    ...(v4.status === 'fulfilled' ? v4.value.map((address) => ({ address, family: 4 })) : []),
    ...(v6.status === 'fulfilled' ? v6.value.map((address) => ({ address, family: 6 })) : []),
  ];
  if (addresses.length === 0) {
    const failures = [v4, v6].flatMap((r) => (r.status === 'rejected' ? [r.reason as NodeJS.ErrnoException] : []));
    // A server that never answered, or answered that it failed: the system's lookup would wait as long, in the pool.
    const unanswered = failures.find((e) => !NOT_IN_DNS.has(e.code ?? ''));
    if (unanswered) throw unanswered;
    if (failures.length === 2 && failures.every(noSuchName) && !systemMayKnowMore()) {
      throw remembered(hostname, Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND', hostname }));
    }
    try {
      addresses = await askSystem(hostname);
    } catch (err) {
      throw noSuchName(err as NodeJS.ErrnoException) ? remembered(hostname, err as Error) : err;
    }
  }
  known.set(hostname, { addresses, until: Date.now() + KEEP_MS });
  return addresses;
}

/** A lookup for net.connect: `check` may refuse an address (the private-network guard). */
export function lookupWith(check?: (hostname: string, addresses: readonly LookupAddress[]) => Error | undefined): LookupFunction {
  return (hostname, options, callback) => {
    resolveHost(hostname).then(
      (all) => {
        const wanted = options.family === 4 || options.family === 6 ? all.filter((a) => a.family === options.family) : all;
        const refused = check?.(hostname, wanted);
        if (refused) return (callback as (e: Error) => void)(refused);
        if (wanted.length === 0) return (callback as (e: Error) => void)(Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND', hostname }));
        if ((options as { all?: boolean }).all) return (callback as (e: null, a: LookupAddress[]) => void)(null, wanted);
        const first = wanted[0] as LookupAddress;
        (callback as (e: null, a: string, f: number) => void)(null, first.address, first.family);
      },
      (err: Error) => (callback as (e: Error) => void)(err),
    );
  };
}
