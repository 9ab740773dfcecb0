/**
 * A host's queue hands tasks out in order and does not keep them: a taken
 * task holds its gbifID's whole job, and with thousands of hosts a queue that
 * kept what it handed out would keep most of a run's jobs alive.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { HostState } from '../src/scheduler/host-state.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const settings = { perHost: 4, breakerThreshold: 100, breakerCooldownMs: 1000, breakerWindowMs: 600_000 };

describe('HostState', () => {
  it('hands tasks out in order, up to its cap', () => {
    const host = new HostState<{ n: number }>('a.example.org', settings);
    for (let n = 0; n < 6; n++) host.push({ n });
    const taken: number[] = [];
    for (let i = 0; i < 6; i++) {
      const task = host.take(Date.now());
      if (!task) break;
      host.inFlight++;
      taken.push(task.n);
    }
    expect(taken).toEqual([0, 1, 2, 3]);
    expect(host.backlog).toBe(2);
  });

  it('keeps no task it has handed out', async () => {
    const host = new HostState<{ payload: number[] }>('b.example.org', settings);
    const refs: WeakRef<object>[] = [];
    for (let i = 0; i < 10; i++) {
      const task = { payload: new Array(1000).fill(i) };
      refs.push(new WeakRef(task));
      host.push(task);
    }
    // Take six of ten (the queue is not empty, so it is not simply reset).
    for (let i = 0; i < 6; i++) expect(host.take(Date.now())).toBeDefined();
    await new Promise((r) => setImmediate(r)); // WeakRefs are kept until the current job ends
    gc();
    expect(refs.map((r) => r.deref() !== undefined)).toEqual([false, false, false, false, false, false, true, true, true, true]);
  });

  it('opens after a window of nothing but failures, however few came; a success or an answer ends the streak', () => {
    const window = { perHost: 4, breakerThreshold: 1000, breakerCooldownMs: 60_000, breakerWindowMs: 10_000 };
    const host = new HostState<object>('c.example.org', window);
    host.push({});
    const t0 = 1_000_000;
    expect(host.failed(t0)).toBeUndefined();
    expect(host.failed(t0 + 4_000)).toBeUndefined();
    expect(host.windowEndsAt()).toBeUndefined(); // two failures are not enough to judge a host
    expect(host.failed(t0 + 5_000)).toBeUndefined();
    expect(host.windowEndsAt()).toBe(t0 + 10_000);
    expect(host.windowElapsed(t0 + 9_999)).toBe(false);
    expect(host.windowElapsed(t0 + 10_000)).toBe(true);
    // A fourth failure after the window opens it, as the clock alone would have.
    expect(host.failed(t0 + 12_000)).toBe('opened');
    expect(host.isOpen(t0 + 12_001)).toBe(true);

    const live = new HostState<object>('d.example.org', window);
    for (let i = 0; i < 5; i++) live.failed(t0 + i * 1000);
    live.succeeded();
    expect(live.failed(t0 + 30_000)).toBeUndefined();
    expect(live.windowElapsed(t0 + 30_000)).toBe(false);
    for (let i = 1; i < 5; i++) live.failed(t0 + 30_000 + i * 1000);
    live.answered(); // a 404 is an answer: the host is up
    expect(live.failingSince).toBeUndefined();
  });
});
