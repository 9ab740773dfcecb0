/**
 * Everything at once, as a cluster's first real run meets it: three workers
 * on one PostgreSQL ledger, killed with -9 and stopped with SIGTERM while
 * replacements start, over hosts that answer 429 once, cut bodies short,
 * reset connections, serve IIIF manifests (one 503 first), share URLs
 * between gbifIDs, and one host that refuses every connection. At the end
 * every file holds the bytes its URL served, every gbifID that could be done
 * is, the dead host's wait behind its open breaker (or, tried --retries times
 * before it was judged dead, are failed for now), and no host ever had more
 * than --per-host requests at once.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { herbdlJson, tempDir } from './helpers/cli.js';
import { ImageServer, refusingPort, type Route } from './helpers/image-server.js';
import { expectConsistentPgTree, pgWorkspace, type Worker } from './helpers/pg-run.js';
import type { StatusJson } from './helpers/ledger.js';
import { query } from './helpers/postgres.js';
import { treePath } from './helpers/run.js';

const PER_HOST = 3;

describe('workers killed and restarted over faulty hosts', async () => {
  let seed = 20261207;
  const rand = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
  const bodies = await Promise.all(
    Array.from({ length: 6 }, (_, k) => sharp({ create: { width: 40 + k, height: 30, channels: 3, background: { r: 40 * k, g: 150, b: 90 } } }).jpeg().toBuffer()),
  );
  const hosts = await Promise.all(Array.from({ length: 6 }, (_, i) => new ImageServer(`127.0.0.${240 + i}`, bodies[0]!).listen()));
  const manifests = hosts[5]!;
  const dead = `http://127.0.0.250:${await refusingPort('127.0.0.250')}`;
  const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
  /** Each URL's bytes, as its host serves them once it serves them. */
  const served = new Map<string, string>();

  /** An image on host h (0 to 2 healthy, 3 a 429 first, 4 a body cut short or a reset first). */
  function image(h: number, path: string): string {
    const body = bodies[Math.floor(rand() * bodies.length)]!;
    const ok: Route = { kind: 'image', body, delayMs: Math.floor(rand() * 40) };
    let route: Route = ok;
    if (h === 3 && rand() < 0.5) route = { kind: 'sequence', steps: [{ kind: 'status', status: 429, headers: { 'retry-after': '1' } }, ok] };
    if (h === 4) route = { kind: 'sequence', steps: [rand() < 0.5 ? { kind: 'short-body' } : { kind: 'reset-mid-body' }, ok] };
    const url = hosts[h]!.route(path, route);
    served.set(url, sha(body));
    return url;
  }
  const anyHost = () => (rand() < 0.7 ? Math.floor(rand() * 3) : 3 + Math.floor(rand() * 2));

  it('ends with every file the bytes its URL served, every gbifID that could be done done, the dead host holding the rest', async () => {
    const rows: [number, string][] = [];
    const shared: string[] = [];
    const onDeadHost = new Set<number>();
    for (let i = 0; i < 500; i++) {
      const id = 61_000_000 + i;
      if (rand() < 0.4) {
        // A v3 manifest of one to three canvases, each a plain image.
        const items = Array.from({ length: 1 + Math.floor(rand() * 3) }, (_, k) => ({
          id: `${manifests.origin}/canvas/${i}/${k}`,
          type: 'Canvas',
          width: 800,
          height: 1200,
          items: [{ id: `${manifests.origin}/page/${i}/${k}`, type: 'AnnotationPage', items: [{ id: `${manifests.origin}/anno/${i}/${k}`, type: 'Annotation', motivation: 'painting', body: { id: image(anyHost(), `/m${i}-${k}.jpg`), type: 'Image', format: 'image/jpeg' } }] }],
        }));
        const json: Route = { kind: 'json', body: JSON.stringify({ '@context': 'http://iiif.io/api/presentation/3/context.json', id: `${manifests.origin}/m/${i}`, type: 'Manifest', items }) };
        rows.push([id, manifests.route(`/m/${i}`, rand() < 0.3 ? { kind: 'sequence', steps: [{ kind: 'status', status: 503 }, json] } : json)]);
        continue;
      }
      for (let k = 0, n = 1 + Math.floor(rand() * 3); k < n; k++) {
        const r = rand();
        if (r < 0.03) {
          rows.push([id, `${dead}/d${i}-${k}.jpg`]);
          onDeadHost.add(id);
        } else if (r < 0.08 && shared.length > 0) rows.push([id, shared[Math.floor(rand() * shared.length)]!]);
        else {
          const url = image(anyHost(), `/p${i}-${k}.jpg`);
          rows.push([id, url]);
          if (rand() < 0.1) shared.push(url);
        }
      }
    }
    const ws = await pgWorkspace(tempDir(), 'chaos', rows);
    const args = ['--timeout', '2', '--retries', '3', '--breaker-window', '6', '--lease', '10', '--per-host', String(PER_HOST), '--concurrency', '12'];
    const started = new Map<Worker, number>();
    const live = new Set<Worker>();
    const start = () => {
      const worker = ws.worker(args);
      started.set(worker, Date.now());
      live.add(worker);
      void worker.exited.then(() => live.delete(worker));
    };
    for (let i = 0; i < 3; i++) start();
    const killed = new Set<Worker>();
    for (let round = 0; round < 4; round++) {
      await new Promise((resolve) => setTimeout(resolve, 2_500));
      // One that has been running a while (a signal during Node's own start would end it before herbdl handles it).
      const victim = [...live].find((w) => Date.now() - (started.get(w) as number) > 2_000);
      if (!victim) break;
      if (round === 2) victim.kill('SIGTERM');
      else {
        victim.kill('SIGKILL');
        killed.add(victim);
      }
      start();
    }
    for (const worker of started.keys()) {
      const code = await worker.exited;
      if (!killed.has(worker)) expect([0, 130], worker.stderr()).toContain(code);
    }
    const last = ws.worker(args);
    expect(await last.exited, last.stderr()).toBe(0);

    // The tree: the done gbifIDs' files, each with the bytes the ledger recorded (and the counters true)...
    await expectConsistentPgTree(ws);
    // ...which are those its URL served.
    const files = await query<{ gbif_id: string; nn: number; url: string }>(
      ws.db,
      `SELECT i.gbif_id::text, COALESCE(p.file_index, i.file_index, i.image_index) AS nn, COALESCE(p.url, i.url) AS url
       FROM images i JOIN ids USING (gbif_id) LEFT JOIN image_parts p ON p.image_id = i.image_id WHERE ids.state = 1`,
    );
    const wrong = files.filter(({ gbif_id: id, nn, url }) => sha(readFileSync(join(ws.out, treePath(id, nn)))) !== served.get(url));
    expect(wrong).toEqual([]);
    expect(files.length).toBeGreaterThan(800);
    // Every gbifID with no image on the dead host is done. The others wait, parked behind it, or (those whose
    // --retries ran out before the host was judged dead) failed for a refused connection, due again later.
    const ids = await query<{ gbif_id: string; state: number; blocked: string | null; codes: string[] | null }>(
      ws.db,
      `SELECT ids.gbif_id::text, ids.state, h.host AS blocked, (SELECT array_agg(DISTINCT error_code) FROM images i WHERE i.gbif_id = ids.gbif_id AND i.state = 2) AS codes
       FROM ids LEFT JOIN hosts h ON h.host_id = ids.blocked_host`,
    );
    const stray = ids.filter(({ gbif_id: id, state, blocked, codes }) => {
      if (!onDeadHost.has(Number(id))) return state !== 1;
      if (state === 0) return blocked !== '127.0.0.250';
      return state !== 2 || JSON.stringify(codes) !== '["connection_refused"]';
    });
    expect(stray).toEqual([]);
    const parked = ids.filter((i) => i.blocked !== null).length;
    expect(parked).toBeGreaterThan(0);
    const status = herbdlJson<StatusJson>(['status', '--db', ws.db]);
    expect(status.blockedHosts).toEqual([expect.objectContaining({ host: '127.0.0.250', blockedIds: parked })]);
    // Politeness held through it all, at every host.
    expect(Math.max(...hosts.map((h) => h.maxInFlight))).toBeLessThanOrEqual(PER_HOST);
    expect(killed.size).toBeGreaterThan(0);
  }, 240_000);
});
