/**
 * A host's queue hands tasks out in order and does not keep them: a taken
 * task holds its gbifID's whole job, and with thousands of hosts a queue that
 * kept what it handed out would keep most of a run's jobs alive.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { FailingHosts } from '../src/scheduler/failing-hosts.js';
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

  it('a suspect host keeps its probe and what it tried, and opens when its window ends even with its other gbifIDs waiting outside', () => {
    const window = { perHost: 4, breakerThreshold: 1000, breakerCooldownMs: 60_000, breakerWindowMs: 10_000 };
    const host = new HostState<{ n: number; tried: boolean }>('e.example.org', window);
    for (let n = 0; n < 6; n++) host.push({ n, tried: n === 3 });
    host.delay({ n: 6, tried: true }, 5);
    const t0 = 1_000_000;
    for (let i = 0; i < 3; i++) host.failed(t0 + i);
    expect(host.suspect).toBe(true);
    let probes = 0;
    const shed = host.shed((t) => t.tried || probes++ === 0);
    expect(shed.map((t) => t.n)).toEqual([1, 2, 4, 5]);
    expect(host.backlog).toBe(3);
    // The kept tasks come out as before: the queue in order, the delayed one once due.
    expect(host.take(t0)?.n).toBe(6);
    expect(host.take(t0)?.n).toBe(0);

    // Its probe ended (failed, with its gbifID), its other gbifIDs outside: the clock alone opens it.
    const failing = new FailingHosts<{ n: number; tried: boolean }>();
    const empty = new HostState<{ n: number; tried: boolean }>('f.example.org', window);
    const outside = new HostState<{ n: number; tried: boolean }>('g.example.org', window);
    for (const h of [empty, outside]) {
      for (let i = 0; i < 3; i++) h.failed(t0 + i);
      failing.note(h);
    }
    outside.heldOutside = true;
    expect(failing.nextWindowEnd()).toBe(t0 + 10_000);
    expect(failing.openElapsed(t0 + 10_000)).toEqual([outside]);
    expect(outside.isOpen(t0 + 10_000)).toBe(true);
    // One with nothing anywhere is left alone: there is nothing to set aside, and no run to keep alive for it.
    expect(empty.breaker).toBe('closed');
    // An answer ends the suspicion, and what waited outside is taken up as any other gbifID.
    const back = new HostState<object>('h.example.org', window);
    for (let i = 0; i < 3; i++) back.failed(t0 + i);
    back.heldOutside = true;
    back.answered();
    expect(back.suspect).toBe(false);
    expect(back.heldOutside).toBe(false);
  });
});
