/**
 * Failed gbifIDs taken up again (retry-failed, or a run's due retries), more
 * than a host's queue holds: those its full queue set aside for later in the
 * run are taken up again in this run, as pending ones are. On a shared ledger
 * they are handed back to all workers, and had been left failed until the next.
 */
import { describe, expect, it } from 'vitest';
import { herbdlAsync, tempDir } from './helpers/cli.js';
import { imageServers, type ImageServer } from './helpers/image-server.js';
import { expectConsistentPgTree, pgWorkspace } from './helpers/pg-run.js';
import { expectConsistentTree, workspace } from './helpers/run.js';

/** 300 gbifIDs on one host, each failing once (404) and then served: its queue holds 64 (--per-host 4). */
function failingOnce(host: ImageServer, prefix: number): [number, string][] {
  return Array.from({ length: 300 }, (_, i) => [prefix + i, host.route(`/r${prefix}-${i}.jpg`, { kind: 'sequence', steps: [{ kind: 'status', status: 404 }, { kind: 'image' }] })]);
}

describe('retry-failed of more gbifIDs than a host\'s queue holds', async () => {
  const [host] = await imageServers(1, 44);
  const dir = tempDir();

  it('takes up every one in one run on a SQLite ledger', async () => {
    const ws = workspace(dir, failingOnce(host!, 95_000));
    expect((await ws.run()).json).toMatchObject({ idsDone: 0, idsFailed: 300 });
    expect((await ws.run(['--host', '127.0.0.44'], 'retry-failed')).json).toMatchObject({ idsDone: 300, idsFailed: 0, pending: 0 });
    expect(ws.status().ids).toMatchObject({ done: 300, failed: 0 });
    expectConsistentTree(ws);
  });

  it('takes up every one in one run on a PostgreSQL ledger, where they are handed back to all workers meanwhile', async () => {
    const before = host!.requests.length;
    const ws = await pgWorkspace(dir, 'retry_many', failingOnce(host!, 96_000));
    const first = ws.worker();
    expect(await first.exited, first.stderr()).toBe(0);
    expect(first.json()).toMatchObject({ idsDone: 0, idsFailed: 300 });

    const again = await herbdlAsync(['retry-failed', '--host', '127.0.0.44', '--db', ws.db, '--out', ws.out, '--allow-private-network', '--json'], { timeoutMs: 60_000 });
    expect(again.status, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout.trim().split('\n').pop() as string)).toMatchObject({ idsDone: 300, idsFailed: 0, pending: 0 });
    expect(host!.requests.length - before).toBe(600);
    await expectConsistentPgTree(ws);
  });
});
