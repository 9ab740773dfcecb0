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

const settings = { perHost: 4, breakerThreshold: 100, breakerCooldownMs: 1000 };

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
});
