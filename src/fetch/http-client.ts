/**
 * One undici Agent for the whole run: keep-alive connection pools per origin,
 * the address guard at connect time, and herbdl's honest User-Agent.
 */
import { Agent } from 'undici';
import { guardedLookup } from './address-guard.js';

export interface ClientOptions {
  readonly timeoutMs: number;
  readonly perHost: number;
  readonly allowPrivateNetwork: boolean;
}

export function createAgent(options: ClientOptions): Agent {
  return new Agent({
    // A few spare connections per origin: the scheduler, not the pool, enforces --per-host.
    connections: options.perHost + 2,
    headersTimeout: options.timeoutMs,
    bodyTimeout: options.timeoutMs,
    keepAliveTimeout: 10_000,
    connect: {
      timeout: options.timeoutMs,
      ...(options.allowPrivateNetwork ? {} : { lookup: guardedLookup }),
    },
  });
}

export function userAgent(version: string, extra: string): string {
  const own = `herbdl/${version} (bulk GBIF image downloader; +https://www.npmjs.com/package/herbdl)`;
  return extra ? `${own} ${extra}` : own;
}
