/**
 * `herbdl recheck` on a PostgreSQL ledger while workers download beside it:
 * its requests come out of the same per-host slots as theirs, and a 429 it
 * meets holds them back too (and theirs it).
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { herbdlAsync, herbdlJson, tempDir } from './helpers/cli.js';
import { imageServers } from './helpers/image-server.js';
import { writeMultimedia } from './helpers/multimedia.js';
import { expectConsistentPgTree, pgWorkspace } from './helpers/pg-run.js';
import type { RecheckJson } from './helpers/run.js';

describe('herbdl recheck beside workers on one PostgreSQL ledger', async () => {
  const [host] = await imageServers(1, 97);
  const dir = tempDir();

  it('takes its requests out of the same --per-host slots as the runs, measured at the host, and shares the 429 it meets', async () => {
    const stored: [number, string][] = Array.from({ length: 120 }, (_, i) => [9_100_000 + i, host!.route(`/old-${i}.jpg`, { kind: 'image', delayMs: 40, etag: `"o${i}"` })]);
    const ws = await pgWorkspace(dir, 'recheck_shared', stored);
    const first = ws.worker(['--concurrency', '8', '--per-host', '4']);
    expect(await first.exited).toBe(0);
    // A newer export adds 120 gbifIDs on the same host, for a worker to download while two rechecks ask about the stored ones.
    const added: [number, string][] = Array.from({ length: 120 }, (_, i) => [9_200_000 + i, host!.route(`/new-${i}.jpg`, { kind: 'image', delayMs: 40 })]);
    herbdlJson(['ingest', writeMultimedia(join(dir, 'recheck-added.txt'), added), '--db', ws.db]);
    // One stored image's host says: not for 4 seconds, then confirms it.
    host!.route('/old-30.jpg', { kind: 'sequence', steps: [{ kind: 'status', status: 429, headers: { 'retry-after': '4' } }, { kind: 'image', delayMs: 40, etag: '"o30"' }] });
    host!.maxInFlight = 0;
    const before = host!.requests.length;

    const worker = ws.worker(['--concurrency', '8', '--per-host', '2']);
    const rechecks = [0, 1].map(() => herbdlAsync(['recheck', '--db', ws.db, '--out', ws.out, '--all', '--concurrency', '8', '--per-host', '2', '--allow-private-network', '--json']));
    expect(await worker.exited, worker.stderr()).toBe(0);
    const results = await Promise.all(rechecks);
    for (const r of results) expect(r.status, r.stderr).toBe(0);

    expect(worker.json().idsDone).toBe(120);
    const summaries = results.map((r) => JSON.parse(r.stdout.trim().split('\n').pop() as string) as RecheckJson);
    // Every stored image was asked about and confirmed (each by a 304), none left for later.
    expect(summaries.reduce((n, s) => n + s.notModified, 0)).toBeGreaterThanOrEqual(120);
    expect(summaries.map((s) => [s.changed, s.gone, s.later])).toEqual([[0, 0, {}], [0, 0, {}]]);
    // The three processes together never had more than 2 requests at the host, and did have 2.
    expect(host!.maxInFlight).toBe(2);
    // After the 429, requests already under way may land; from 1.5 s on nobody asked until Retry-After was over.
    const requests = host!.requests.slice(before);
    const throttledAt = requests.find((r) => r.path === '/old-30.jpg')!.at;
    expect(requests.filter((r) => r.at > throttledAt + 1500 && r.at < throttledAt + 3500)).toEqual([]);
    expect(requests.filter((r) => r.at >= throttledAt + 3500).length).toBeGreaterThan(0);
    await expectConsistentPgTree(ws);
  }, 120_000);
});
