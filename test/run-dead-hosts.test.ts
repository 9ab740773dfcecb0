/**
 * Dead hosts are the normal case: a run must end by itself when only hosts
 * that refuse or hang hold work, however slowly their cooldowns let failures
 * come, and say which hosts hold how many gbifIDs. A user who knows a host is
 * back takes it up with retry-failed --host.
 */
import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { herbdlAsync, herbdlJson, tempDir } from './helpers/cli.js';
import { writeMultimedia } from './helpers/multimedia.js';
import { writeLedger, type StatusJson } from './helpers/ledger.js';
import { ImageServer, imageServers, refusingPort, sampleJpeg } from './helpers/image-server.js';
import { expectConsistentTree, workspace, type RunJson } from './helpers/run.js';

describe('a run beside dead hosts', async () => {
  const [healthy, hanging] = await imageServers(2, 35);
  const refusing = '127.0.0.37';
  const port = await refusingPort(refusing);
  const dir = tempDir();

  it('ends by itself once only dead hosts hold work, with them named as blocked; retry-failed --host takes one up', async () => {
    const rows: [number, string][] = [];
    for (let i = 0; i < 40; i++) rows.push([3500 + i, healthy!.route(`/ok-${i}.jpg`, { kind: 'image', delayMs: 20 })]);
    for (let i = 0; i < 12; i++) rows.push([3600 + i, hanging!.route(`/hang-${i}.jpg`, { kind: 'hang' })]);
    for (let i = 0; i < 9; i++) rows.push([3700 + i, `http://${refusing}:${port}/gone-${i}.jpg`]);
    // A gbifID with one healthy image and one on the hanging host waits on the hanging one.
    rows.push([3800, healthy!.route('/ok-mixed.jpg', { kind: 'image' })], [3800, hanging!.route('/hang-mixed.jpg', { kind: 'hang' })]);
    const ws = workspace(dir, rows);
    // A threshold no dead host reaches here: only the window can open their breakers.
    const settings = ['--timeout', '1', '--retries', '3', '--per-host', '4', '--breaker-threshold', '1000', '--breaker-cooldown', '600', '--breaker-window', '3'];
    const r = await herbdlAsync(['run', '--db', ws.db, '--out', ws.out, '--allow-private-network', '--json', ...settings], { timeoutMs: 45_000 });
    expect(r.status).toBe(0);
    const json = JSON.parse(r.stdout) as RunJson;
    expect(json).toMatchObject({ idsDone: 40, idsFailed: 0, pending: 22 });
    expect(json.hostsOpened.sort()).toEqual(['127.0.0.36', '127.0.0.37']);
    expect(json.blocked).toEqual({ '127.0.0.36': 13, '127.0.0.37': 9 });
    // The hanging host was not asked again and again while the run waited.
    expect(hanging!.requests.length).toBeLessThanOrEqual(16);

    const status = ws.status();
    expect(status.ids).toMatchObject({ done: 40, pending: 22, failed: 0 });
    expect(status.blockedHosts.map((h) => [h.host, (h as { blockedIds?: number }).blockedIds]).sort()).toEqual([
      ['127.0.0.36', 13],
      ['127.0.0.37', 9],
    ]);
    const text = await herbdlAsync(['status', '--db', ws.db]);
    expect(text.stdout).toMatch(/127\.0\.0\.37\s+9 gbifIDs, 9 images pending/);
    expectConsistentTree(ws);

    // Parked behind the open breakers, they are not claimed by the next run: it ends at once, asking no one.
    const hangingAsked = hanging!.requests.length;
    const later = await herbdlAsync(['run', '--db', ws.db, '--out', ws.out, '--allow-private-network', '--json', ...settings], { timeoutMs: 45_000 });
    expect(later.status).toBe(0);
    expect(JSON.parse(later.stdout)).toMatchObject({ idsDone: 0, idsSetAside: 0, pending: 22, blocked: {} });
    expect(hanging!.requests.length).toBe(hangingAsked);
    // Once their cooldowns have passed, the next run probes each once, and the rest stay parked.
    writeLedger(ws.db, (db) => db.prepare('UPDATE hosts SET breaker_open_until = ? WHERE breaker_open_until IS NOT NULL').run(Date.now() - 1000));
    const probing = await herbdlAsync(['run', '--db', ws.db, '--out', ws.out, '--allow-private-network', '--json', ...settings], { timeoutMs: 45_000 });
    expect(probing.status).toBe(0);
    expect(JSON.parse(probing.stdout)).toMatchObject({ idsDone: 0, idsSetAside: 2, pending: 22 });
    expect(hanging!.requests.length).toBe(hangingAsked + 1);
    expect(ws.status().blockedHosts.map((h) => [h.host, (h as { blockedIds?: number }).blockedIds]).sort()).toEqual([
      ['127.0.0.36', 13],
      ['127.0.0.37', 9],
    ]);

    // The refusing host comes back; the user says so.
    const back = await new ImageServer(refusing, await sampleJpeg()).listenOn(port);
    for (let i = 0; i < 9; i++) back.route(`/gone-${i}.jpg`, { kind: 'image' });
    try {
      const again = await herbdlAsync(['retry-failed', '--host', refusing, '--db', ws.db, '--out', ws.out, '--allow-private-network', ...settings], { timeoutMs: 45_000 });
      expect(again.status).toBe(0);
      expect(again.stdout).toMatch(/closed the breaker of 127\.0\.0\.37/);
      expect(again.stdout, again.stdout).toMatch(/gbifIDs\s+done 9 /);
      expect(back.requests).toHaveLength(9);
    } finally {
      await back.close();
    }
    const after = ws.status();
    expect(after.ids).toMatchObject({ done: 49, pending: 13 });
    expect(after.blockedHosts.map((h) => h.host)).toEqual(['127.0.0.36']);
    expectConsistentTree(ws);
  });

  it('ends by itself when the dead hosts\' URLs are shared: a gbifID waiting on another\'s fetch is set aside with it', async () => {
    // Each dead URL is shared by three gbifIDs (a placeholder image, as in real downloads), each claimed in the same
    // window: one fetches it, two wait on that fetch. Before, when the fetch was set aside behind the open breaker,
    // the URL went to a waiting gbifID queued on the open host, where it waited out the cooldown: the run did not end.
    const rows: [number, string][] = [];
    for (let i = 0; i < 10; i++) rows.push([3900 + i, healthy!.route(`/ok-shared-${i}.jpg`, { kind: 'image' })]);
    for (let i = 0; i < 12; i++) {
      const shared = i % 2 === 0 ? hanging!.route(`/hang-shared-${i}.jpg`, { kind: 'hang' }) : `http://${refusing}:${port}/gone-shared-${i}.jpg`;
      for (let k = 0; k < 3; k++) rows.push([4000 + i * 3 + k, shared]);
    }
    const ws = workspace(dir, rows);
    const settings = ['--timeout', '1', '--retries', '2', '--per-host', '2', '--breaker-threshold', '1000', '--breaker-cooldown', '600', '--breaker-window', '2'];
    const r = await herbdlAsync(['run', '--db', ws.db, '--out', ws.out, '--allow-private-network', '--json', ...settings], { timeoutMs: 45_000 });
    expect(r.status, r.stderr).toBe(0);
    const json = JSON.parse(r.stdout) as RunJson;
    // The refusing host's first URLs may fail (their retries spent) before its window has passed; the rest wait behind it.
    expect(json).toMatchObject({ idsDone: 10, blocked: { '127.0.0.36': 18 } });
    expect(json.idsFailed + json.pending).toBe(36);
    expect(json.idsFailed + (json.blocked['127.0.0.37'] ?? 0)).toBe(18);
    expect(ws.status().ids).toMatchObject({ done: 10, pending: json.pending, failed: json.idsFailed });
    expectConsistentTree(ws);
  });
});

describe('failed gbifIDs whose retry meets an open breaker', async () => {
  const [healthy] = await imageServers(1, 41);
  const refusing = '127.0.0.42';
  const port = await refusingPort(refusing);
  const dir = tempDir();

  it('includes a host that refuses every request (it barred us): refusals in a row open its breaker, so its gbifIDs wait, pending, instead of a request and a failure each', async () => {
    const barred = await new ImageServer('127.0.0.38', await sampleJpeg()).listen();
    try {
      const rows: [number, string][] = [];
      for (let i = 0; i < 20; i++) rows.push([3900 + i, healthy!.route(`/fine-${i}.jpg`, { kind: 'image', delayMs: 20 })]);
      for (let i = 0; i < 30; i++) rows.push([4000 + i, barred.route(`/barred-${i}.jpg`, { kind: 'status', status: 403 })]);
      const ws = workspace(dir, rows);
      const r = await herbdlAsync(['run', '--db', ws.db, '--out', ws.out, '--allow-private-network', '--json', '--per-host', '2', '--breaker-threshold', '5', '--breaker-cooldown', '600'], { timeoutMs: 45_000 });
      expect(r.status).toBe(0);
      const json = JSON.parse(r.stdout) as RunJson;
      // The refusals before the fifth fail their gbifIDs, as a 403 does; the rest wait on the open breaker.
      expect(json).toMatchObject({ idsDone: 20, idsFailed: 4, pending: 26, failures: { http_403: 4 } });
      expect(json.hostsOpened).toEqual(['127.0.0.38']);
      expect(json.blocked).toEqual({ '127.0.0.38': 26 });
      // Five refusals, and what was in flight beside the fifth.
      expect(barred.requests.length).toBeLessThanOrEqual(5 + 2);
      expectConsistentTree(ws);
    } finally {
      await barred.close();
    }
  });

  it('are counted as retries put off, apart from the pending gbifIDs set aside: they stay failed', async () => {
    const rows: [number, string][] = [];
    for (let i = 0; i < 10; i++) rows.push([4100 + i, healthy!.route(`/ok-${i}.jpg`, { kind: 'image' })]);
    for (let i = 0; i < 8; i++) rows.push([4200 + i, `http://${refusing}:${port}/gone-${i}.jpg`]);
    const ws = workspace(dir, rows);
    // The 404s and refusals come at once whatever --timeout is: it only guards the healthy host's answers, each with one attempt.
    const common = ['--db', ws.db, '--out', ws.out, '--allow-private-network', '--json', '--timeout', '10', '--retries', '1', '--breaker-cooldown', '600'];
    // First the host answers 404: its gbifIDs fail. Then it is gone, and the user asks for their retry.
    const gone = await new ImageServer(refusing, await sampleJpeg()).listenOn(port);
    try {
      const first = await herbdlAsync(['run', ...common], { timeoutMs: 45_000 });
      expect(first.status).toBe(0);
      expect(JSON.parse(first.stdout)).toMatchObject({ idsDone: 10, idsFailed: 8, idsSetAside: 0, pending: 0 });
    } finally {
      await gone.close();
    }
    // Then their retry, one at a time: the first refusal opens the breaker, and all eight wait on it, failed still.
    const again = await herbdlAsync(['retry-failed', '--host', refusing, ...common, '--breaker-threshold', '1', '--per-host', '1'], { timeoutMs: 45_000 });
    expect(again.status).toBe(0);
    const json = JSON.parse(again.stdout) as RunJson;
    expect(json).toMatchObject({ idsDone: 0, idsFailed: 0, idsSetAside: 0, retriesPutOff: 8, pending: 0 });
    // Not listed as pending on the open breaker: none is pending.
    expect(json.blocked).toEqual({});
    expect(ws.status().ids).toMatchObject({ done: 10, failed: 8, pending: 0 });
    const text = await herbdlAsync(['retry-failed', '--host', refusing, ...common.filter((a) => a !== '--json'), '--breaker-threshold', '1', '--per-host', '1']);
    expect(text.stdout).toMatch(/gbifIDs\s+done 0 {2}failed 0 {2}set aside 0 {2}still pending 0/);
    expect(text.stdout).not.toMatch(/blocked/);
    expect(text.stdout).toMatch(/retries {3}8 failed gbifIDs due for a retry waited on open breakers/);
  });
});

describe('a run beside more dead hosts than a summary line can hold', async () => {
  // An export's dead hosts are counted in thousands: one line naming every one was 130 KB at 2,000.
  const dead = Array.from({ length: 14 }, (_, i) => `127.0.39.${i + 1}`);
  const port = await refusingPort(dead[0]!);
  const dir = tempDir();

  it('names the ten holding most and counts the rest, in the summary and in status; --json and status --hosts N give them all', async () => {
    const rows: [number, string][] = [];
    // Host i holds i + 3 gbifIDs: an order with no ties, and every host keeps some pending while its first fail their retries.
    dead.forEach((address, i) => {
      for (let n = 0; n < i + 3; n++) rows.push([39_000 + i * 100 + n, `http://${address}:${port}/gone-${n}.jpg`]);
    });
    const ws = workspace(dir, rows);
    const settings = ['--timeout', '1', '--retries', '3', '--per-host', '4', '--breaker-threshold', '1000', '--breaker-cooldown', '600', '--breaker-window', '3'];
    const r = await herbdlAsync(['run', '--db', ws.db, '--out', ws.out, '--allow-private-network', '--no-progress', ...settings], { timeoutMs: 45_000 });
    expect(r.status, r.stderr).toBe(0);
    const opened = r.stdout.match(/^breakers opened on (.*) and 4 more hosts \(their gbifIDs stay pending; see herbdl status\)$/m);
    expect(opened, r.stdout + r.stderr).not.toBeNull();
    expect(opened![1]!.split(', ').filter((h) => dead.includes(h))).toHaveLength(10);

    const status = ws.status();
    expect(status.blocked.hosts).toBe(14);
    expect(status.blockedHosts).toHaveLength(14); // --hosts 50
    const byHost = status.blockedHosts.map((h) => [h.host, h.blockedIds ?? 0] as const);
    const top = byHost.slice(0, 10);
    const rest = byHost.slice(10).reduce((n, [, ids]) => n + ids, 0);
    expect(rest).toBeGreaterThan(0);
    expect(r.stdout).toContain(`blocked   pending on open breakers: ${top.map(([host, n]) => `${host} ${n} gbifIDs`).join(', ')} and 4 more hosts, ${rest} gbifIDs\n`);

    const text = (await herbdlAsync(['status', '--db', ws.db])).stdout;
    const listed = text.split('\n').filter((line) => /^ {2}127\.0\.39\.\d+ {2}\d+ gbifIDs/.test(line));
    expect(listed.map((line) => line.trim().split(' ')[0])).toEqual(top.map(([host]) => host));
    const restImages = status.blockedHosts.slice(10).reduce((n, h) => n + h.pending, 0);
    expect(text).toContain(`  and 4 more hosts, ${restImages} images pending (--hosts 14 lists them all)\n`);
    const json = herbdlJson<StatusJson>(['status', '--db', ws.db]);
    expect(json.blockedHosts).toHaveLength(10);
    expect(json.blocked).toEqual({ hosts: 14, pending: status.images.pending });

    // retry-failed with no filter closes every breaker, and says so in one line of the same shape.
    const again = await herbdlAsync(['retry-failed', '--db', ws.db, '--out', ws.out, '--allow-private-network', '--no-progress', ...settings], { timeoutMs: 45_000 });
    expect(again.status, again.stderr).toBe(0);
    const closed = again.stdout.match(/^closed the breaker of (.*) and 4 more hosts$/m);
    expect(closed, again.stdout).not.toBeNull();
    expect(closed![1]!.split(', ').filter((h) => dead.includes(h))).toHaveLength(10);
  });
});

describe('a host that asks to be left alone for longer than a breaker would', async () => {
  const [healthy, busy, later] = await imageServers(3, 38);
  const dir = tempDir();

  it('has its breaker opened until the time it gave: the run ends, and the next one does not ask it before then', async () => {
    const rows: [number, string][] = [];
    for (let i = 0; i < 10; i++) rows.push([4100 + i, healthy!.route(`/ok-${i}.jpg`, { kind: 'image' })]);
    // Retry-After in seconds (a day), and as an HTTP date (next year).
    for (let i = 0; i < 4; i++) rows.push([4200 + i, busy!.route(`/busy-${i}.jpg`, { kind: 'status', status: 429, headers: { 'Retry-After': '86400' } })]);
    const nextYear = new Date(Date.now() + 365 * 86_400_000);
    for (let i = 0; i < 3; i++) rows.push([4300 + i, later!.route(`/later-${i}.jpg`, { kind: 'status', status: 503, headers: { 'Retry-After': nextYear.toUTCString() } })]);
    // A short wait is waited out within the run, as before.
    rows.push([4400, healthy!.route('/soon.jpg', { kind: 'sequence', steps: [{ kind: 'status', status: 429, headers: { 'Retry-After': '1' } }, { kind: 'image' }] })]);
    const ws = workspace(dir, rows);
    const started = Date.now();
    const r = await herbdlAsync(['run', '--db', ws.db, '--out', ws.out, '--allow-private-network', '--json', '--breaker-cooldown', '600'], { timeoutMs: 45_000 });
    expect(r.status, r.stderr).toBe(0);
    // Before, the run waited the day out.
    expect(Date.now() - started).toBeLessThan(40_000);
    const json = JSON.parse(r.stdout) as RunJson;
    expect(json).toMatchObject({ idsDone: 11, idsFailed: 0, pending: 7, blocked: { [busy!.address]: 4, [later!.address]: 3 } });
    expect(json.hostsOpened.sort()).toEqual([busy!.address, later!.address].sort());
    const blocked = new Map(ws.status().blockedHosts.map((h) => [h.host, h as { breakerOpenUntil?: number; blockedIds?: number }]));
    // Until the time each host gave, not --breaker-cooldown's ten minutes.
    expect(blocked.get(busy!.address)?.breakerOpenUntil).toBeGreaterThan(started + 86_000_000);
    expect(Math.abs((blocked.get(later!.address)?.breakerOpenUntil ?? 0) - nextYear.getTime())).toBeLessThan(2_000);
    expect(blocked.get(later!.address)?.blockedIds).toBe(3);
    expectConsistentTree(ws);

    const asked = busy!.requests.length + later!.requests.length;
    expect(asked).toBeLessThanOrEqual(7);
    const again = await ws.run(['--breaker-cooldown', '600']);
    expect(again.json).toMatchObject({ idsDone: 0, pending: 7 });
    expect(busy!.requests.length + later!.requests.length).toBe(asked);
  });
});

describe('a host that comes back while the run goes on', async () => {
  const [healthy, dead, deadToo] = await imageServers(3, 46);
  const flaky = '127.0.0.49';
  const port = await refusingPort(flaky);
  const dir = tempDir();

  /**
   * Polls the ledger until `host`'s breaker is open (the run goes on meanwhile); bounded. status runs
   * without blocking this process, which serves the healthy host: a synchronous one held its answers
   * back for as long as each status took, and on a loaded machine (two suites at once) they passed the
   * run's --timeout 1, so the healthy host's own breaker opened and its gbifIDs were set aside.
   */
  async function breakerOpened(ws: ReturnType<typeof workspace>, host: string): Promise<void> {
    for (let i = 0; i < 100; i++) {
      const status = JSON.parse((await herbdlAsync(['status', '--db', ws.db, '--json', '--hosts', '50'])).stdout) as StatusJson;
      if (status.hosts.some((h) => h.host === host && (h as { breakerOpenUntil?: number }).breakerOpenUntil)) return;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error(`the breaker of ${host} did not open`);
  }

  it('has failed gbifIDs whose retry was set aside behind it retried in the same run, counted off as retries put off', async () => {
    const flakyToo = '127.0.0.50';
    const portToo = await refusingPort(flakyToo);
    const rows: [number, string][] = [];
    for (let i = 0; i < 40; i++) rows.push([47_001 + i * 2, `http://${flakyToo}:${portToo}/back-${i}.jpg`]);
    const ws = workspace(dir, rows);
    // First the host answers 404: its 40 gbifIDs fail.
    const first = await new ImageServer(flakyToo, await sampleJpeg()).listenOn(portToo);
    try {
      expect((await ws.run()).json).toMatchObject({ idsFailed: 40 });
    } finally {
      await first.close();
    }
    // New work on a healthy host outlasts the flaky host's outage; the user asks for the failed ones' retry, and the host is down.
    const healthyRows = Array.from({ length: 200 }, (_, i) => [47_000 + i * 2, healthy!.route(`/later-${i}.jpg`, { kind: 'image', delayMs: 100 })] as const);
    herbdlJson(['ingest', writeMultimedia(join(dir, 'later.txt'), healthyRows), '--db', ws.db]);
    const settings = ['--timeout', '1', '--retries', '3', '--per-host', '2', '--breaker-threshold', '3', '--breaker-cooldown', '2', '--breaker-window', '1'];
    const running = herbdlAsync(['retry-failed', '--host', flakyToo, '--db', ws.db, '--out', ws.out, '--allow-private-network', '--json', ...settings], { timeoutMs: 60_000 });
    await breakerOpened(ws, flakyToo);
    const back = await new ImageServer(flakyToo, await sampleJpeg()).listenOn(portToo);
    for (let i = 0; i < 40; i++) back.route(`/back-${i}.jpg`, { kind: 'image' });
    try {
      const r = await running;
      expect(r.status, r.stderr).toBe(0);
      const json = JSON.parse(r.stdout.trim().split('\n').pop() as string) as RunJson;
      // Without the take-up: 200 done, and the 40 left failed for a later run, counted as retries put off.
      expect(json).toMatchObject({ idsDone: 240, idsFailed: 0, idsSetAside: 0, retriesPutOff: 0, pending: 0 });
      expect(json.blocked).toEqual({});
      expect(back.requests).toHaveLength(40);
    } finally {
      await back.close();
    }
    expect(ws.status().ids).toMatchObject({ done: 240, failed: 0, pending: 0 });
    expectConsistentTree(ws);
  });

  it('has the gbifIDs set aside behind it taken up in the same run, each fetched once', async () => {
    const rows: [number, string][] = [];
    // The healthy host's work outlasts the flaky host's outage and cooldown by seconds.
    for (let i = 0; i < 200; i++) {
      rows.push([46_000 + i * 2, healthy!.route(`/ok-${i}.jpg`, { kind: 'image', delayMs: 100 })]);
      if (i % 5 === 0) rows.push([46_001 + i * 2, `http://${flaky}:${port}/back-${i}.jpg`]);
    }
    const ws = workspace(dir, rows);
    const settings = ['--timeout', '1', '--retries', '3', '--per-host', '2', '--breaker-threshold', '3', '--breaker-cooldown', '2', '--breaker-window', '1'];
    const running = herbdlAsync(['run', '--db', ws.db, '--out', ws.out, '--allow-private-network', '--json', ...settings], { timeoutMs: 60_000 });
    await breakerOpened(ws, flaky);
    const back = await new ImageServer(flaky, await sampleJpeg()).listenOn(port);
    for (let i = 0; i < 200; i += 5) back.route(`/back-${i}.jpg`, { kind: 'image' });
    try {
      const r = await running;
      expect(r.status, r.stderr).toBe(0);
      const json = JSON.parse(r.stdout) as RunJson;
      // Without the take-up: 200 done, and the flaky host's 40 pending until the next run.
      expect(json).toMatchObject({ idsDone: 240, idsFailed: 0, idsSetAside: 0, pending: 0, blocked: {} });
      expect(json.hostsOpened).toEqual([flaky]);
      expect(back.requests.map((req) => req.path).sort()).toEqual(rows.filter(([id]) => id % 2 === 1).map(([, url]) => new URL(url).pathname).sort());
    } finally {
      await back.close();
    }
    expect(ws.status().ids).toMatchObject({ done: 240, pending: 0 });
    expectConsistentTree(ws);
  });

  it('is probed once a cooldown while the run has other work, and the run still ends when only dead hosts hold work', async () => {
    const rows: [number, string][] = [];
    for (let i = 0; i < 60; i++) rows.push([47_000 + i, healthy!.route(`/more-${i}.jpg`, { kind: 'image', delayMs: 100 })]);
    for (let i = 0; i < 8; i++) rows.push([47_100 + i, dead!.route(`/down-${i}.jpg`, { kind: 'status', status: 503 })]);
    for (let i = 0; i < 5; i++) rows.push([47_200 + i, deadToo!.route(`/down-${i}.jpg`, { kind: 'status', status: 503 })]);
    const ws = workspace(dir, rows);
    // A cooldown of 0: each dead host could be probed at once, again and again; only while the healthy work lasts.
    const settings = ['--timeout', '1', '--retries', '3', '--per-host', '2', '--breaker-threshold', '2', '--breaker-cooldown', '0', '--breaker-window', '1'];
    const r = await herbdlAsync(['run', '--db', ws.db, '--out', ws.out, '--allow-private-network', '--json', ...settings], { timeoutMs: 45_000 });
    expect(r.status, r.stderr).toBe(0);
    const json = JSON.parse(r.stdout) as RunJson;
    // Each set-aside gbifID counted once however often it was taken up and set aside again.
    expect(json).toMatchObject({ idsDone: 60, idsFailed: 0, pending: 13, blocked: { '127.0.0.47': 8, '127.0.0.48': 5 } });
    expect(json.idsSetAside).toBe(13);
    // Probed while the healthy work lasted (about 3 s), one request at a time, not one per gbifID (without take-ups: none after the
    // first attempts); and let go for the run after three failed probes (without that: one probe every half second while it lasts).
    for (const server of [dead!, deadToo!]) {
      const late = server.requests.filter((req) => req.at - server.requests[0]!.at > 400).length;
      expect(late).toBeGreaterThan(1);
      expect(server.requests.length).toBeLessThanOrEqual(3 + 3); // up to three first attempts (two at once, --per-host 2, and a retry), three probes
    }
    expect(ws.status().ids).toMatchObject({ done: 60, pending: 13, failed: 0 });
    expectConsistentTree(ws);
  });
});
