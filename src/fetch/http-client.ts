/**
 * One dispatcher for the whole run: keep-alive connections per origin
 * (host-clients.ts), the address guard at connect time, and herbdl's
 * honest User-Agent.
 */
import { readFileSync } from 'node:fs';
import { createSecureContext, type SecureContext } from 'node:tls';
import { buildConnector, type Dispatcher } from 'undici';
import { guardedLookup, isBlockedAddress } from './address-guard.js';
import { lookupWith } from './dns-lookup.js';
import { HostClients, TLS_WEIGHT } from './host-clients.js';
import { INCOMPLETE_CHAIN, MissingIssuers } from './missing-issuers.js';

export interface ClientOptions {
  readonly timeoutMs: number;
  readonly perHost: number;
  readonly concurrency: number;
  readonly allowPrivateNetwork: boolean;
}

/** TLS sessions kept for resumption, one per host, the least recently used going first. */
const MAX_SESSIONS = 4096;

/**
 * One connector for every Client, keeping hosts' TLS sessions. undici's
 * connector remembers a session per host, but each Client builds its own
 * and holds the session only by a WeakRef: a host's connection closed, its
 * next one made a full handshake. Here one connector serves all Clients, and
 * the sessions it learns are held, so a host met again resumes (no
 * certificate sent and checked again). 10,000 sheets over 2,000 loopback
 * HTTPS hosts, each met again after the 1,999 others (so its connection was
 * closed meanwhile): 34.5 to 36.6 s of CPU against 40.0 to 40.4, 385 to 409
 * images/s against 338 to 340, the same peak RSS.
 */
function keepingSessions(connect: buildConnector.connector): buildConnector.connector {
  const held = new Map<string, Buffer>();
  return (options, callback) =>
    connect(options, (...args) => {
      const socket = args[1];
      if (socket && options.protocol === 'https:') {
        socket.on('session', (session: Buffer) => {
          held.delete(options.hostname);
          held.set(options.hostname, session);
          if (held.size > MAX_SESSIONS) held.delete(held.keys().next().value as string);
        });
      }
      callback(...args);
    });
}

/**
 * Connects as `connect` does, and completes a chain a server sent short
 * (missing-issuers.ts): the connection that failed for it is made again,
 * verified with the issuers found, and so is every later one to that host.
 */
function completingChains(connect: buildConnector.connector, connectWith: (context: SecureContext) => buildConnector.connector, issuers: MissingIssuers): buildConnector.connector {
  let current: { readonly context: SecureContext; readonly connect: buildConnector.connector } | undefined;
  const withContext = (context: SecureContext) => {
    if (current?.context !== context) current = { context, connect: connectWith(context) };
    return current.connect;
  };
  return (options, callback) => {
    const context = options.protocol === 'https:' ? issuers.contextFor(options.hostname) : undefined;
    (context ? withContext(context) : connect)(options, (...args) => {
      const code = (args[0] as { code?: string } | null)?.code;
      if (!context && options.protocol === 'https:' && code && INCOMPLETE_CHAIN.has(code)) {
        void issuers.complete(options).then((completed) => (completed ? withContext(completed)(options, callback) : callback(...args)));
        return;
      }
      callback(...args);
    });
  };
}

/**
 * The process's soft limit on open files, where the system says (Linux);
 * undefined elsewhere. Node raises it to the hard limit at start.
 */
function openFileLimit(): number | undefined {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith('Max open files'));
    const soft = Number(line?.split(/\s+/)[3]);
    return Number.isFinite(soft) && soft > 0 ? soft : undefined;
  } catch {
    return undefined;
  }
}

/**
 * How much open connections may weigh in all (host-clients.ts): four HTTPS
 * connections for each request that may be in flight, or ten times as many
 * plain ones, and never more than half the open files the process may have
 * (the rest are for files being written, the ledger, and the requests).
 * 2,000 plain HTTP hosts each met again after the 1,999 others (bench:run
 * scenario 9), a connection kept for each instead of 256 in all: 2,000
 * connects for 5,000 sheets instead of 5,000, 619 against 587 images/s over
 * six alternating pairs, about 20 MB more peak RSS.
 */
export function connectionBudget(concurrency: number, fileLimit = openFileLimit()): number {
  const budget = concurrency * 4 * TLS_WEIGHT;
  return fileLimit === undefined ? budget : Math.max(TLS_WEIGHT, Math.min(budget, Math.floor(fileLimit / 2)));
}

export function createAgent(options: ClientOptions): Dispatcher {
  // Names are looked up off libuv's pool either way (dns-lookup.ts); the guard refuses private addresses unless allowed.
  const lookup = options.allowPrivateNetwork ? lookupWith() : guardedLookup;
  const connectWith = (secureContext: SecureContext) => buildConnector({ timeout: options.timeoutMs, maxCachedSessions: MAX_SESSIONS, secureContext, lookup });
  // One TLS context for every connection (the root certificates, NODE_EXTRA_CA_CERTS too), where
  // tls.connect makes one per connection: measured against a loopback server, a new HTTPS connection
  // then costs about 12% less CPU and an idle one 65 KB instead of 87.
  const connect = completingChains(connectWith(createSecureContext()), connectWith, new MissingIssuers({ timeoutMs: options.timeoutMs, lookup, blocked: (address) => !options.allowPrivateNetwork && isBlockedAddress(address) }));
  // A few spare connections per origin: the scheduler, not the dispatcher, enforces --per-host.
  return new HostClients(options.perHost + 2, connectionBudget(options.concurrency), {
    headersTimeout: options.timeoutMs,
    bodyTimeout: options.timeoutMs,
    keepAliveTimeout: 10_000,
    connect: keepingSessions(connect),
  });
}

export function userAgent(version: string, extra: string): string {
  const own = `herbdl/${version} (bulk GBIF image downloader; +https://www.npmjs.com/package/herbdl)`;
  return extra ? `${own} ${extra}` : own;
}
