/**
 * One dispatcher for the whole run: keep-alive connections per origin
 * (host-clients.ts), the address guard at connect time, and herbdl's
 * honest User-Agent.
 */
import { createSecureContext } from 'node:tls';
import type { Dispatcher } from 'undici';
import { guardedLookup } from './address-guard.js';
import { HostClients } from './host-clients.js';

export interface ClientOptions {
  readonly timeoutMs: number;
  readonly perHost: number;
  readonly concurrency: number;
  readonly allowPrivateNetwork: boolean;
}

export function createAgent(options: ClientOptions): Dispatcher {
  // A few spare connections per origin: the scheduler, not the dispatcher, enforces --per-host.
  // Open connections in all: four for each request that may be in flight.
  return new HostClients(options.perHost + 2, options.concurrency * 4, {
    headersTimeout: options.timeoutMs,
    bodyTimeout: options.timeoutMs,
    keepAliveTimeout: 10_000,
    connect: {
      timeout: options.timeoutMs,
      // One TLS context for every connection (the root certificates, NODE_EXTRA_CA_CERTS too), where
      // tls.connect makes one per connection: measured against a loopback server, a new HTTPS connection
      // then costs about 12% less CPU and an idle one 65 KB instead of 87.
      secureContext: createSecureContext(),
      ...(options.allowPrivateNetwork ? {} : { lookup: guardedLookup }),
    },
  });
}

export function userAgent(version: string, extra: string): string {
  const own = `herbdl/${version} (bulk GBIF image downloader; +https://www.npmjs.com/package/herbdl)`;
  return extra ? `${own} ${extra}` : own;
}
