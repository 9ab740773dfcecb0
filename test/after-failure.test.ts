/** The scheduler's decision after a failed attempt, with a real host state and real error classes. */
import { describe, expect, it } from 'vitest';
import { HostDownError, PermanentError, RetryableError, ThrottledError } from '../src/errors.js';
import { afterFailure, MAX_THROTTLES } from '../src/scheduler/after-failure.js';
import { HostState } from '../src/scheduler/host-state.js';
import type { Task } from '../src/scheduler/task.js';

const NOW = 1_000_000;
const host = () => new HostState<Task>('img.example.org', { perHost: 4, breakerThreshold: 3, breakerCooldownMs: 60_000, breakerWindowMs: 600_000 });
const task = (part?: { rung: number; of: number }): Task =>
  ({
    image: { imageId: 1, imageIndex: 0, url: 'https://img.example.org/a.jpg', host: 'img.example.org' },
    temp: '/tmp/x',
    attempts: 0,
    throttles: 0,
    ...(part ? { part: { index: 0, requests: Array.from({ length: part.of }, (_, i) => `https://img.example.org/${i}.jpg`), rung: part.rung } } : {}),
  }) as unknown as Task;

describe('afterFailure', () => {
  it('fails a gbifID for good on a permanent failure, without counting it against the host', () => {
    const h = host();
    expect(afterFailure(new PermanentError('HTTP 404', 'http_404', 404), task(), h, NOW, 3, 1000)).toEqual({ then: 'fail', transient: false });
    expect(h.consecutiveFailures).toBe(0);
  });

  it('steps down the IIIF ladder on a refusal while rungs are left, then fails', () => {
    const refused = new PermanentError('HTTP 400', 'http_400', 400);
    expect(afterFailure(refused, task({ rung: 0, of: 3 }), host(), NOW, 3, 1000)).toEqual({ then: 'next-rung' });
    expect(afterFailure(refused, task({ rung: 2, of: 3 }), host(), NOW, 3, 1000)).toEqual({ then: 'fail', transient: false });
    // A body that is no image is no refusal of a size: no HTTP status, no next rung.
    expect(afterFailure(new PermanentError('not an image', 'not_image'), task({ rung: 0, of: 3 }), host(), NOW, 3, 1000)).toEqual({ then: 'fail', transient: false });
  });

  it('waits out a throttle until the host may be asked again, and sets the gbifID aside after too many', () => {
    const h = host();
    const t = task();
    const next = afterFailure(new ThrottledError('HTTP 429', 'http_429', 429, NOW + 30_000), t, h, NOW, 3, 1000);
    expect(next).toEqual({ then: 'retry', at: h.cooldownUntil, throttled: true });
    expect(h.cooldownUntil).toBeGreaterThanOrEqual(NOW + 30_000);
    t.throttles = MAX_THROTTLES;
    expect(afterFailure(new ThrottledError('HTTP 429', 'http_429', 429, undefined), t, h, NOW, 3, 1000)).toEqual({ then: 'set-aside' });
  });

  it('opens the breaker until the time a host gave when it asks for longer than the breaker cooldown; what comes back from it meanwhile is set aside', () => {
    const h = host();
    expect(afterFailure(new ThrottledError('HTTP 429', 'http_429', 429, NOW + 86_400_000), task(), h, NOW, 3, 1000)).toEqual({ then: 'breaker-opened' });
    expect(h.openUntil).toBe(NOW + 86_400_000);
    expect(h.isOpen(NOW + 86_000_000)).toBe(true);
    expect(afterFailure(new ThrottledError('HTTP 429', 'http_429', 429, NOW + 86_400_000), task(), h, NOW + 10, 3, 1000)).toEqual({ then: 'set-aside' });
    // Our own cooldown (no Retry-After) never opens it.
    const own = host();
    const t = task();
    for (let i = 0; i < 12; i++) expect(afterFailure(new ThrottledError('HTTP 429', 'http_429', 429, undefined), t, own, NOW, 3, 1000).then).toBe('retry');
    expect(own.breaker).toBe('closed');
  });

  it('retries a transient failure with backoff until the attempts run out', () => {
    const t = task();
    const first = afterFailure(new RetryableError('HTTP 503', 'http_503', 503), t, host(), NOW, 3, 1000);
    expect(first).toMatchObject({ then: 'retry', throttled: false });
    expect((first as { at: number }).at).toBeGreaterThan(NOW);
    afterFailure(new RetryableError('HTTP 503', 'http_503', 503), t, host(), NOW, 3, 1000);
    expect(afterFailure(new RetryableError('HTTP 503', 'http_503', 503), t, host(), NOW, 3, 1000)).toEqual({ then: 'fail', transient: true });
  });

  it('opens the breaker on the threshold-th refusal (401, 403) in a row, which only a success ends; a refused probe keeps it open', () => {
    const h = host();
    const barred = new PermanentError('HTTP 403', 'http_403', 403);
    expect(afterFailure(barred, task(), h, NOW, 3, 1000)).toEqual({ then: 'fail', transient: false });
    // Another answer does not end the streak; a success does.
    expect(afterFailure(new PermanentError('HTTP 404', 'http_404', 404), task(), h, NOW, 3, 1000).then).toBe('fail');
    expect(afterFailure(barred, task(), h, NOW, 3, 1000).then).toBe('fail');
    h.succeeded();
    expect(afterFailure(barred, task(), h, NOW, 3, 1000).then).toBe('fail');
    expect(afterFailure(new PermanentError('HTTP 401', 'http_401', 401), task(), h, NOW, 3, 1000).then).toBe('fail');
    expect(afterFailure(barred, task(), h, NOW, 3, 1000)).toEqual({ then: 'breaker-opened' });
    // Refused while its breaker opened: set aside with the rest, not failed.
    expect(afterFailure(barred, task(), h, NOW + 1, 3, 1000)).toEqual({ then: 'set-aside' });
    // The half-open probe is refused again: open again.
    expect(h.breakerAt(NOW + 60_001)).toBe('half_open');
    expect(afterFailure(barred, task(), h, NOW + 60_001, 3, 1000)).toEqual({ then: 'breaker-opened' });
    expect(h.isOpen(NOW + 60_002)).toBe(true);
  });

  it('opens the breaker on the threshold-th failure in a row, cooling the host on connect failures', () => {
    const h = host();
    const down = new HostDownError('refused', 'connection_refused');
    expect(afterFailure(down, task(), h, NOW, 10, 1000).then).toBe('retry');
    expect(h.cooldownUntil).toBeGreaterThan(NOW);
    expect(afterFailure(down, task(), h, NOW, 10, 1000).then).toBe('retry');
    expect(afterFailure(down, task(), h, NOW, 10, 1000)).toEqual({ then: 'breaker-opened' });
    expect(afterFailure(down, task(), h, NOW + 1, 10, 1000)).toEqual({ then: 'set-aside' });
  });
});
