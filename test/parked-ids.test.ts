/**
 * gbifIDs parked behind a dead host's open breaker leave it when they leave
 * the queue another way: excluded, removed by a newer export, or adopted from
 * disk. `status` counts, host by host, only those still waiting for it, on
 * either ledger; one excluded and then put back is pending again, parked by
 * the next run if its host is still down.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { herbdlAsync, herbdlJson, tempDir } from './helpers/cli.js';
import { refusingPort } from './helpers/image-server.js';
import { countIn } from './helpers/counters.js';
import type { StatusJson } from './helpers/ledger.js';
import { writeMultimedia } from './helpers/multimedia.js';
import { freshDatabase } from './helpers/postgres.js';
import type { RunJson } from './helpers/run.js';

const FIRST = 5_100_000_000;
const ids = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => FIRST + from + i);
const rel = (id: number) => `${String(id).slice(0, 3)}/${String(id).slice(3, 6)}/${id}-00.jpg`;

describe.each([
  ['SQLite', '127.0.41.1'],
  ['PostgreSQL', '127.0.41.2'],
])('gbifIDs parked behind a dead host, on a %s ledger', async (ledger, dead) => {
  const dir = tempDir();
  const port = await refusingPort(dead);
  const rows = ids(0, 30).map((id) => [id, `http://${dead}:${port}/${id}.jpg`] as [number, string]);

  it('are no longer counted as waiting for it once excluded, removed by a newer export, or adopted from disk', async () => {
    const db = ledger === 'SQLite' ? join(dir, 'parked.db') : await freshDatabase('parked_leave');
    const out = join(dir, 'out');
    const run = async () => {
      const r = await herbdlAsync(['run', '--db', db, '--out', out, '--allow-private-network', '--json', '--retries', '5', '--breaker-threshold', '2', '--breaker-cooldown', '600'], { timeoutMs: 60_000 });
      expect(r.status, r.stderr).toBe(0);
      return JSON.parse(r.stdout) as RunJson;
    };
    /** What status says the host holds, and what the ledger's ids hold: parked and pending. */
    const counts = async () => {
      const status = herbdlJson<StatusJson>(['status', '--db', db, '--json']);
      const sql = 'SELECT count(*) AS n FROM ids WHERE blocked_host > 0 AND state = 0';
      const parked = await countIn(db, sql);
      return { said: status.blockedHosts.find((h) => h.host === dead)?.blockedIds ?? 0, parked, pending: status.ids.pending };
    };
    herbdlJson(['ingest', writeMultimedia(join(dir, `${ledger}-all.txt`), rows), '--db', db]);
    expect(await run()).toMatchObject({ idsSetAside: 30, pending: 30 });
    expect(await counts()).toEqual({ said: 30, parked: 30, pending: 30 });

    // Five are excluded (another dataset has them), five adopted from an earlier download's files, ten gone from a newer export.
    writeFileSync(join(dir, `${ledger}-exclude.txt`), ids(0, 5).join('\n') + '\n');
    herbdlJson(['exclude', join(dir, `${ledger}-exclude.txt`), '--db', db]);
    const sheet = await sharp({ create: { width: 400, height: 600, channels: 3, background: { r: 220, g: 210, b: 190 } } }).jpeg().toBuffer();
    for (const id of ids(5, 10)) {
      mkdirSync(dirname(join(out, rel(id))), { recursive: true });
      writeFileSync(join(out, rel(id)), sheet);
    }
    expect(herbdlJson(['adopt', out, '--db', db])).toMatchObject({ adopted: 5 });
    herbdlJson(['ingest', '--snapshot', writeMultimedia(join(dir, `${ledger}-newer.txt`), rows.slice(0, 20)), '--db', db]);
    // Before, the host still said 30: status listed gbifIDs that no run would ever take up.
    expect(await counts()).toEqual({ said: 10, parked: 10, pending: 10 });

    // Put back, the five are pending and not parked; a run with the host still down parks them again, asking it nothing.
    herbdlJson(['exclude', '--undo', join(dir, `${ledger}-exclude.txt`), '--db', db]);
    expect(await counts()).toEqual({ said: 10, parked: 10, pending: 15 });
    expect(await run()).toMatchObject({ idsSetAside: 5, idsDone: 0, idsFailed: 0, pending: 15 });
    expect(await counts()).toEqual({ said: 15, parked: 15, pending: 15 });
  });
});
