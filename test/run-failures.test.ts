/** How run treats what real hosts do: throttling, hanging, refusing, resetting, redirecting, lying. */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from './helpers/cli.js';
import { imageServers } from './helpers/image-server.js';
import { workspace } from './helpers/run.js';

const FAST = ['--timeout', '1', '--retries', '2'];

describe('run against misbehaving hosts', async () => {
  const [a, b] = await imageServers(2, 20);
  const dir = tempDir();
  const ok = a!.route('/ok.jpg', { kind: 'image' });

  it('429 with Retry-After: no request to that host before it has passed', async () => {
    const url = b!.route('/ra.jpg', { kind: 'sequence', steps: [{ kind: 'status', status: 429, headers: { 'retry-after': '2' } }, { kind: 'image' }] });
    const other = b!.route('/ra-other.jpg', { kind: 'image', delayMs: 0 });
    const ws = workspace(dir, [[5001, url], [5002, other]]);
    const { json } = await ws.run([...FAST, '--per-host', '1']);
    expect(json).toMatchObject({ idsDone: 2, idsFailed: 0 });
    const first = b!.requests.find((r) => r.path === '/ra.jpg')!.at;
    // Everything sent to that host after the 429 (one request at a time, so all later ones).
    const later = b!.requests.filter((r) => r.at > first && r.path.startsWith('/ra'));
    expect(later.length).toBeGreaterThan(0);
    for (const r of later) expect(r.at - first).toBeGreaterThanOrEqual(1900);
  });

  it('429 without Retry-After: backs off, then succeeds', async () => {
    const url = b!.route('/429.jpg', { kind: 'sequence', steps: [{ kind: 'status', status: 429 }, { kind: 'image' }] });
    const ws = workspace(dir, [[5101, url]]);
    const { json } = await ws.run(FAST);
    expect(json).toMatchObject({ idsDone: 1 });
    const [r1, r2] = b!.requests.filter((r) => r.path === '/429.jpg');
    expect(r2!.at - r1!.at).toBeGreaterThanOrEqual(450);
  });

  it('a host that hangs fails its IDs with timeout and does not hold up the others', async () => {
    const hang = b!.route('/hang.jpg', { kind: 'hang' });
    const ws = workspace(dir, [[5201, hang], [5202, ok], [5203, a!.route('/ok2.jpg', { kind: 'image' })]]);
    const { json } = await ws.run(FAST);
    expect(json).toMatchObject({ idsDone: 2, idsFailed: 1, failures: { timeout: 1 } });
    expect(b!.count('/hang.jpg')).toBe(2);
    expect(ws.files().some((f) => f.includes('5201'))).toBe(false);
  });

  it('refused connections fail with connection_refused after the retries', async () => {
    const ws = workspace(dir, [[5301, 'http://127.0.0.29:9/refused.jpg']]);
    const { json } = await ws.run(FAST);
    expect(json).toMatchObject({ idsFailed: 1, failures: { connection_refused: 1 } });
  });

  it('a reset mid-body is retried; one that always resets fails connection_reset', async () => {
    const once = a!.route('/reset-once.jpg', { kind: 'sequence', steps: [{ kind: 'reset-mid-body' }, { kind: 'image' }] });
    const always = a!.route('/reset.jpg', { kind: 'reset-mid-body' });
    const ws = workspace(dir, [[5401, once], [5402, always]]);
    const { json } = await ws.run(FAST);
    expect(json).toMatchObject({ idsDone: 1, idsFailed: 1 });
    expect(Object.keys(json.failures)).toEqual([expect.stringMatching(/^(connection_reset|truncated)$/)]);
    expect(ws.files()).toEqual(['540/1/5401-00.jpg']);
  });

  it('a body shorter than its Content-Length fails as truncated', async () => {
    const ws = workspace(dir, [[5501, a!.route('/short.jpg', { kind: 'short-body' })]]);
    const { json } = await ws.run(FAST);
    expect(json).toMatchObject({ idsFailed: 1, failures: { truncated: 1 } });
  });

  it('5xx is retried; 404 and an HTML page with 200 are not', async () => {
    const flaky = a!.route('/500-once.jpg', { kind: 'sequence', steps: [{ kind: 'status', status: 500 }, { kind: 'image' }] });
    const missing = a!.route('/missing.jpg', { kind: 'status', status: 404 });
    const terms = a!.route('/terms.jpg', { kind: 'html' });
    const ws = workspace(dir, [[5601, flaky], [5602, missing], [5603, terms]]);
    const { json } = await ws.run(FAST);
    expect(json).toMatchObject({ idsDone: 1, idsFailed: 2, failures: { http_404: 1, not_image: 1 } });
    expect([a!.count('/500-once.jpg'), a!.count('/missing.jpg'), a!.count('/terms.jpg')]).toEqual([2, 1, 1]);
  });

  it('follows redirects, catches a loop and more than five hops', async () => {
    a!.route('/r2', { kind: 'redirect', to: '/ok.jpg' });
    const r1 = a!.route('/r1', { kind: 'redirect', to: `${a!.origin}/r2` });
    a!.route('/loop-b', { kind: 'redirect', to: '/loop-a' });
    const loop = a!.route('/loop-a', { kind: 'redirect', to: '/loop-b' });
    for (let i = 0; i < 7; i++) a!.route(`/hop${i}`, { kind: 'redirect', to: `/hop${i + 1}` });
    a!.route('/hop7', { kind: 'image' });
    const ws = workspace(dir, [[5701, r1], [5702, loop], [5703, `${a!.origin}/hop0`]]);
    const { json } = await ws.run(FAST);
    expect(json).toMatchObject({ idsDone: 1, idsFailed: 2, failures: { redirect_loop: 1, too_many_redirects: 1 } });
  });

  it('--deadline ends a request that drips bytes forever', async () => {
    const ws = workspace(dir, [[5851, a!.route('/drip.jpg', { kind: 'drip', everyMs: 100 })]]);
    const started = Date.now();
    const { json } = await ws.run(['--timeout', '1', '--retries', '1', '--deadline', '1']);
    expect(json).toMatchObject({ idsFailed: 1, failures: { deadline: 1 } });
    expect(Date.now() - started).toBeLessThan(15_000);
  });

  it('decodes a gzip body', async () => {
    const ws = workspace(dir, [[5801, a!.route('/gz.jpg', { kind: 'image', gzip: true })]]);
    const { json } = await ws.run(FAST);
    expect(json).toMatchObject({ idsDone: 1 });
    expect(json.bytes).toBeGreaterThan(100);
  });

  it('enforces --max-bytes as too_large', async () => {
    const ws = workspace(dir, [[5901, ok]]);
    const { json } = await ws.run([...FAST, '--max-bytes', '100']);
    expect(json).toMatchObject({ idsFailed: 1, failures: { too_large: 1 } });
  });

  it('refuses loopback and private addresses without --allow-private-network', async () => {
    const ws = workspace(dir, [[6001, ok], [6002, `http://localhost:${new URL(ok).port}/ok.jpg`]]);
    const r = await (async () => {
      const { herbdlAsync } = await import('./helpers/cli.js');
      return herbdlAsync(['run', '--db', ws.db, '--out', ws.out, '--json', ...FAST]);
    })();
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ idsFailed: 2, failures: { blocked_address: 2 } });
  });

  it('a folder it cannot write to stops the run with a one-line error naming it, exit 1, no stack', async () => {
    const ws = workspace(dir, [[6101, ok]]);
    const file = join(dir, 'not-a-folder');
    writeFileSync(file, 'x');
    const { herbdlAsync } = await import('./helpers/cli.js');
    const r = await herbdlAsync(['run', '--db', ws.db, '--out', join(file, 'images'), '--allow-private-network', '--json', ...FAST]);
    expect(r.status).toBe(1);
    expect(r.stderr.trim()).toMatch(/^herbdl: ENOTDIR: not a directory, mkdir '.*not-a-folder\/images.*'$/);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('a slow host with more gbifIDs than its queue holds: the rest wait in the ledger, the others go on, and every one is done', async () => {
    // --per-host 1 lets a host queue 32 gbifIDs; the other 48 of the slow host's are set aside for later in the run.
    const rows: [number, string][] = [];
    for (let i = 0; i < 80; i++) rows.push([6200 + i, b!.route(`/slow-${i}.jpg`, { kind: 'image', delayMs: 15 })]);
    for (let i = 0; i < 20; i++) rows.push([6300 + i, a!.route(`/fast-${i}.jpg`, { kind: 'image' })]);
    const ws = workspace(dir, rows);
    const { json } = await ws.run([...FAST, '--per-host', '1', '--concurrency', '4']);
    expect(json).toMatchObject({ idsDone: 100, idsFailed: 0, idsSetAside: 0, pending: 0 });
    expect(ws.status().ids).toMatchObject({ pending: 0, done: 100 });
  });
});

