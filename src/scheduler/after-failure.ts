/**
 * What the scheduler does after an attempt failed, decided by the failure's
 * kind (errors.ts names them by exactly this): a refused IIIF size steps down
 * the ladder, a permanent failure fails the gbifID (a host's refusals in a
 * row open its breaker, as failures do), a throttle waits out the
 * host's cooldown (one longer than --breaker-cooldown, which the host asked
 * for with Retry-After, opens its breaker until then), a transient failure
 * is retried with backoff until the attempts run out, and a host whose
 * breaker opens sets its work aside. The host's own state (cooldown,
 * breaker, cap) is updated as it decides.
 */
import type { FetchError, ThrottledError } from '../errors.js';
import { backoffMs } from './backoff.js';
import type { HostState } from './host-state.js';
import type { Task } from './task.js';

/** Throttles one task may meet before its gbifID is set aside for a later run. */
export const MAX_THROTTLES = 20;
const RETRY_CAP_MS = 30_000;

export type AfterFailure =
  | { readonly then: 'next-rung' }
  | { readonly then: 'fail'; readonly transient: boolean }
  | { readonly then: 'retry'; readonly at: number; readonly throttled: boolean }
  | { readonly then: 'set-aside' }
  | { readonly then: 'breaker-opened' };

export function afterFailure(failure: FetchError, task: Task, host: HostState<Task>, now: number, retries: number, retryBaseMs: number): AfterFailure {
  if (failure.kind === 'permanent') {
    if (failure.httpStatus === 401 || failure.httpStatus === 403) {
      if (host.refused(now) === 'opened') return { then: 'breaker-opened' };
      // Refused while its breaker opened: it waits with the others.
      if (host.isOpen(now)) return { then: 'set-aside' };
    } else host.answered();
    const part = task.part;
    // A IIIF server refused this size (or this URL): try the next request before giving up.
    if (part && failure.httpStatus !== undefined && part.rung + 1 < part.requests.length) return { then: 'next-rung' };
    return { then: 'fail', transient: false };
  }
  if (failure.kind === 'throttled') {
    const retryAt = (failure as ThrottledError).retryAt;
    host.coolDown(now, retryAt);
    if (retryAt !== undefined && host.openForLongCooldown(now)) return { then: 'breaker-opened' };
    // Its breaker opened while this request was out (a long Retry-After, or failures).
    if (host.isOpen(now)) return { then: 'set-aside' };
    if (++task.throttles > MAX_THROTTLES) return { then: 'set-aside' };
    return { then: 'retry', at: host.cooldownUntil, throttled: true };
  }
  if (failure.code === 'timeout' || failure.code === 'connect_timeout' || failure.kind === 'host_down') host.coolDown(now);
  if (host.failed(now) === 'opened') return { then: 'breaker-opened' };
  // It opened while this request was out.
  if (host.isOpen(now)) return { then: 'set-aside' };
  if (++task.attempts < retries) return { then: 'retry', at: now + backoffMs(task.attempts, retryBaseMs, RETRY_CAP_MS), throttled: false };
  return { then: 'fail', transient: true };
}
