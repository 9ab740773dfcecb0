/**
 * Leaving out what other datasets hold: `ingest --exclude` and `herbdl
 * exclude`, from a list of gbifIDs and from a multimedia file, before and
 * after ingest, on both ledgers, with exact counts and nothing downloaded
 * that was excluded.
 */
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readColumn } from '../src/ingest/exclude.js';
import { sortedUnique } from '../src/ingest/sorted-runs.js';
import { parseGbifId } from '../src/input/rows.js';
import { openLedger } from '../src/ledger/open.js';
import { FIXTURES, herbdl, herbdlAsync, herbdlJson, tempDir } from './helpers/cli.js';
import { imageServers } from './helpers/image-server.js';
import { readLedger, type IngestJson, type StatusJson } from './helpers/ledger.js';
import { writeMultimedia } from './helpers/multimedia.js';
import { freshDatabase } from './helpers/postgres.js';
import type { RunJson } from './helpers/run.js';
import { GBIF_SAMPLES } from './helpers/samples.js';
import { writeZip } from './helpers/zip.js';

interface ExcludeJson {
  read: number;
  listed: number;
  excluded: number;
  skipped: number;
}

interface UndoJson {
  undo: boolean;
  read: number;
  unlisted: number;
  restored: number;
}


type Status = StatusJson;

const [server] = await imageServers(1, 92);
server!.route('/404.jpg', { kind: 'status', status: 404 });
for (let i = 0; i < 10; i++) server!.route(`/${i}.jpg`, { kind: 'image' });
const url = (path: string) => `${server!.origin}/${path}`;

describe.each([['sqlite'], ['postgres']])('exclusions on a %s ledger', async (kind) => {
  const dir = tempDir();
  const ledger = async (label: string) => (kind === 'sqlite' ? join(dir, `${label}.db`) : await freshDatabase(`exclude_${label}`));

  it('ingest --exclude with a list: the listed gbifIDs are never downloaded, status counts them apart, export lists them', async () => {
    const db = await ledger('before');
    const out = join(dir, 'before-images');
    // A heading, a blank line, a repeat, CRLF and an ID the export does not have.
    writeFileSync(join(dir, 'list.txt'), 'gbifID\r\n5001\r\n\r\n5003\r\n5003\r\n999999\r\n');
    const mm = writeMultimedia(join(dir, 'before.txt'), [
      [5001, url('1.jpg')],
      [5001, url('2.jpg')],
      [5002, url('3.jpg')],
      [5003, url('4.jpg')],
      [5004, url('5.jpg')],
    ]);
    const ingest = herbdlJson<IngestJson & { excluded: number; exclusion: ExcludeJson }>(['ingest', mm, '--db', db, '--exclude', join(dir, 'list.txt')]);
    expect(ingest.exclusion).toMatchObject({ read: 4, listed: 3, excluded: 0 });
    expect(ingest).toMatchObject({ gbifIds: 4, images: 5, excluded: 2 });
    const status = herbdlJson<Status>(['status', '--db', db]);
    expect(status.ids).toEqual({ total: 4, pending: 2, done: 0, failed: 0, excluded: 2, removed: 0 });
    expect(status.images).toEqual({ total: 5, pending: 2, done: 0, failed: 0, excluded: 3, removed: 0 });
    expect(status.hosts[0]).toMatchObject({ images: 5, pending: 2 });

    const before = server!.requests.length;
    const run = await herbdlAsync(['run', '--db', db, '--out', out, '--allow-private-network', '--json']);
    expect(run.status).toBe(0);
    expect(JSON.parse(run.stdout) as RunJson).toMatchObject({ idsDone: 2, idsFailed: 0, pending: 0 });
    const asked = server!.requests.slice(before).map((r) => r.path).sort();
    expect(asked).toEqual(['/3.jpg', '/5.jpg']);

    const excluded = herbdl(['export', '--db', db, '--state', 'excluded', '--format', 'jsonl']);
    expect(excluded.status).toBe(0);
    const rows = excluded.stdout.trim().split('\n').map((l) => JSON.parse(l) as { gbifID: number; state: string });
    expect(rows.map((r) => [r.gbifID, r.state])).toEqual([
      [5001, 'excluded'],
      [5001, 'excluded'],
      [5003, 'excluded'],
    ]);
  });

  it('exclude after a run, from a multimedia file: pending and failed gbifIDs leave the queue, done ones stay done', async () => {
    const db = await ledger('after');
    const out = join(dir, 'after-images');
    const mm = writeMultimedia(join(dir, 'after.txt'), [
      [6001, url('6.jpg')],
      [6002, url('404.jpg')],
      [6002, url('7.jpg')],
      [6003, url('8.jpg')],
    ]);
    herbdlJson(['ingest', mm, '--db', db]);
    const run = await herbdlAsync(['run', '--db', db, '--out', out, '--allow-private-network', '--json', '--limit', '2']);
    expect(run.status).toBe(0);
    // 6001 done, 6002 failed (a 404), 6003 still pending (--limit 2).
    let status = herbdlJson<Status>(['status', '--db', db]);
    expect(status.ids).toEqual({ total: 3, pending: 1, done: 1, failed: 1, excluded: 0, removed: 0 });
    expect(status.errors).toEqual({ http_404: 1 });

    // Another dataset's multimedia file that holds all three, and one this ledger lacks.
    const other = writeMultimedia(join(dir, 'other.txt'), [
      [6001, 'https://elsewhere.example/a.jpg'],
      [6002, 'https://elsewhere.example/b.jpg'],
      [6003, 'https://elsewhere.example/c.jpg'],
      [7000, 'https://elsewhere.example/d.jpg'],
      ['not-an-id', 'https://elsewhere.example/e.jpg'],
    ]);
    const exclusion = herbdlJson<ExcludeJson>(['exclude', other, '--db', db]);
    expect(exclusion).toMatchObject({ read: 4, listed: 4, excluded: 2, skipped: 1 });
    status = herbdlJson<Status>(['status', '--db', db]);
    expect(status.ids).toEqual({ total: 3, pending: 0, done: 1, failed: 0, excluded: 2, removed: 0 });
    expect(status.images).toEqual({ total: 4, pending: 0, done: 1, failed: 0, excluded: 3, removed: 0 });
    expect(status.errors).toEqual({});

    // Nothing comes back: retry-failed finds no failure, a run nothing to do; excluding again changes nothing.
    const before = server!.requests.length;
    const again = await herbdlAsync(['retry-failed', '--db', db, '--out', out, '--allow-private-network', '--json']);
    expect(again.status).toBe(0);
    expect(server!.requests.length).toBe(before);
    expect(herbdlJson<ExcludeJson>(['exclude', other, '--db', db])).toMatchObject({ read: 4, listed: 0, excluded: 0 });
    expect(herbdlJson<Status>(['status', '--db', db]).ids).toEqual(status.ids);
  });

  it('exclude --undo puts excluded gbifIDs back in the queue, pending, with every counter; IDs taken off the list are ingested pending', async () => {
    const db = await ledger('undo');
    const out = join(dir, `undo-${kind}`);
    const mm = writeMultimedia(join(dir, `undo-${kind}.txt`), [
      [6101, url('1.jpg')],
      [6102, url('404.jpg')],
      [6102, url('2.jpg')],
      [6103, url('3.jpg')],
      [6104, url('4.jpg')],
    ]);
    herbdlJson(['ingest', mm, '--db', db]);
    expect((await herbdlAsync(['run', '--db', db, '--out', out, '--allow-private-network', '--json', '--limit', '2'])).status).toBe(0);
    // 6101 done, 6102 failed (a 404), 6103 and 6104 pending.
    const before = herbdlJson<Status>(['status', '--db', db]);
    expect(before.ids).toEqual({ total: 4, pending: 2, done: 1, failed: 1, excluded: 0, removed: 0 });

    // A list given by mistake: one done, one failed, one pending, one not ingested yet.
    writeFileSync(join(dir, `undo-${kind}.list`), '6101\n6102\n6103\n6199\n');
    expect(herbdlJson<ExcludeJson>(['exclude', join(dir, `undo-${kind}.list`), '--db', db])).toMatchObject({ listed: 4, excluded: 2 });
    // Taken back, all but 6101, with an ID that was never listed.
    writeFileSync(join(dir, `undo-back-${kind}.list`), '6102\n6103\n6199\n6200\n');
    const undo = herbdl(['exclude', '--undo', join(dir, `undo-back-${kind}.list`), '--db', db]);
    expect(undo.status).toBe(0);
    expect(undo.stdout.split('\n').slice(0, 4)).toEqual([
      `no longer excluded: the gbifIDs of ${join(dir, `undo-back-${kind}.list`)}`,
      '  gbifIDs read  4',
      '  unlisted      3 (others were not on the exclusion list, or repeated)',
      '  back pending  2 excluded gbifIDs of the ledger (the next run fetches them; failed ones are tried again)',
    ]);
    const after = herbdlJson<Status>(['status', '--db', db]);
    // The failed one comes back pending, its error gone from the counts; the done one stays done.
    expect(after.ids).toEqual({ total: 4, pending: 3, done: 1, failed: 0, excluded: 0, removed: 0 });
    expect(after.images).toEqual({ ...before.images, pending: before.images.pending + before.images.failed, failed: 0 });
    expect(after.errors).toEqual({});
    expect(after.hosts[0]).toMatchObject({ images: 5, pending: after.images.pending, done: after.images.done, failed: 0 });
    // Undone twice: nothing more; 6101 is still listed.
    expect(herbdlJson<UndoJson>(['exclude', '--undo', join(dir, `undo-back-${kind}.list`), '--db', db])).toMatchObject({ undo: true, read: 4, unlisted: 0, restored: 0 });
    expect(herbdlJson<ExcludeJson>(['exclude', join(dir, `undo-${kind}.list`), '--db', db])).toMatchObject({ listed: 3, excluded: 2 });
    expect(herbdlJson<UndoJson>(['exclude', '--undo', join(dir, `undo-back-${kind}.list`), '--db', db])).toMatchObject({ unlisted: 3, restored: 2 });

    // 6199, no longer listed, is ingested pending; the run fetches every restored gbifID, the 404 fails again.
    expect(herbdlJson<IngestJson & { excluded: number }>(['ingest', writeMultimedia(join(dir, `undo-more-${kind}.txt`), [[6199, url('5.jpg')]]), '--db', db])).toMatchObject({ gbifIds: 1, excluded: 0 });
    const asked = server!.requests.length;
    const run = await herbdlAsync(['run', '--db', db, '--out', out, '--allow-private-network', '--json']);
    expect(run.status).toBe(0);
    expect(JSON.parse(run.stdout) as RunJson).toMatchObject({ idsDone: 3, idsFailed: 1, pending: 0 });
    expect(server!.requests.slice(asked).map((r) => r.path)).toEqual(expect.arrayContaining(['/404.jpg', '/3.jpg', '/4.jpg', '/5.jpg']));
    const end = herbdlJson<Status>(['status', '--db', db]);
    expect(end.ids).toEqual({ total: 5, pending: 0, done: 4, failed: 1, excluded: 0, removed: 0 });
    expect(end.errors).toEqual({ http_404: 1 });
  });

  it('a real GBIF download excluded after its own ingest: every gbifID is excluded', async () => {
    const db = await ledger('sample');
    const sample = join(GBIF_SAMPLES, 'amblyomma_inat_full_archive', 'multimedia.txt.gz');
    const ingest = herbdlJson<IngestJson>(['ingest', sample, '--db', db]);
    const exclusion = herbdlJson<ExcludeJson>(['exclude', sample, '--db', db]);
    expect(exclusion).toMatchObject({ listed: ingest.gbifIds, excluded: ingest.gbifIds });
    expect(herbdlJson<Status>(['status', '--db', db]).ids).toEqual({ total: ingest.gbifIds, pending: 0, done: 0, failed: 0, excluded: ingest.gbifIds, removed: 0 });
  });

  it('reads another export as ingest reads it: a GBIF download zip, and a gzipped list', async () => {
    const db = await ledger('archives');
    const fixture = join(FIXTURES, 'multimedia.txt');
    const ingest = herbdlJson<IngestJson>(['ingest', fixture, '--db', db]);
    expect(ingest.gbifIds).toBe(9);
    const zipFile = await writeZip(join(dir, `other-${kind}.zip`), { 'multimedia.txt': readFileSync(fixture) });
    // Every gbifID the other export holds is listed, also those of rows ingest skips (not images, no URL).
    expect(herbdlJson<ExcludeJson>(['exclude', zipFile, '--db', db])).toMatchObject({ listed: 21, excluded: 9 });
    const ids = herbdl(['export', '--db', db, '--state', 'excluded', '--format', 'jsonl']).stdout.trim().split('\n').map((l) => (JSON.parse(l) as { gbifID: number }).gbifID);
    const listFile = join(dir, `list-${kind}.txt.gz`);
    writeFileSync(listFile, gzipSync([...new Set(ids)].join('\n') + '\n'));
    expect(herbdlJson<ExcludeJson>(['exclude', listFile, '--db', db])).toMatchObject({ read: 9, listed: 0, excluded: 0 });
    expect(herbdlJson<Status>(['status', '--db', db]).ids).toEqual({ total: 9, pending: 0, done: 0, failed: 0, excluded: 9, removed: 0 });
  });

  it('a gbifID excluded while a run holds it stays excluded when its download fails', async () => {
    const db = await ledger('during');
    server!.route(`/hang-${kind}.jpg`, { kind: 'hang' });
    herbdlJson(['ingest', writeMultimedia(join(dir, `during-${kind}.txt`), [[9001, url(`hang-${kind}.jpg`)]]), '--db', db]);
    const run = herbdlAsync(['run', '--db', db, '--out', join(dir, `during-${kind}`), '--allow-private-network', '--json', '--timeout', '2', '--retries', '1']);
    const deadline = Date.now() + 20_000;
    while (!server!.requests.some((r) => r.path === `/hang-${kind}.jpg`) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    writeFileSync(join(dir, `during-${kind}.list`), '9001\n');
    expect(herbdlJson<ExcludeJson>(['exclude', join(dir, `during-${kind}.list`), '--db', db])).toMatchObject({ listed: 1, excluded: 1 });
    const done = await run;
    expect(done.status).toBe(0);
    const status = herbdlJson<Status>(['status', '--db', db]);
    expect(status.ids).toEqual({ total: 1, pending: 0, done: 0, failed: 0, excluded: 1, removed: 0 });
    expect(status.errors).toEqual({});
  });

  it('reads a long list in place, line by line, with the same rules and line numbers', async () => {
    const db = await ledger('long');
    herbdlJson(['ingest', writeMultimedia(join(dir, `long-${kind}.txt`), [[40_000_003, url('0.jpg')], [40_019_999, url('1.jpg')]]), '--db', db]);
    // 20,000 lines over many read chunks: white space around IDs, CRLF, blank lines, repeats, a leading zero.
    const lines = Array.from({ length: 20_000 }, (_, i) => (i % 997 === 5 ? '' : i % 3 === 0 ? ` ${40_000_000 + i}\t\r` : `${40_000_000 + (i % 19_000)}`));
    lines[7] = '040000007';
    writeFileSync(join(dir, `long-${kind}.list`), lines.join('\n') + '\n');
    const summary = herbdlJson<ExcludeJson>(['exclude', join(dir, `long-${kind}.list`), '--db', db]);
    const ids = lines.filter((l) => l.trim() !== '').map((l) => Number(l.trim()));
    const listed = new Set(ids);
    expect(summary).toMatchObject({ read: ids.length, listed: listed.size, excluded: [40_000_003, 40_019_999].filter((id) => listed.has(id)).length });
    expect(summary.excluded).toBe(1);
    lines[15_000] = '40015000x';
    writeFileSync(join(dir, `long-bad-${kind}.list`), lines.join('\n') + '\n');
    const r = herbdl(['exclude', join(dir, `long-bad-${kind}.list`), '--db', db]);
    expect(r.status).toBe(3);
    expect(r.stderr.trim()).toBe(`herbdl: ${join(dir, `long-bad-${kind}.list`)}: line 15001: "40015000x" is not a gbifID`);
  });

  it('a list larger than one batch is sorted in runs and merged: the same counts as in one batch, no temporary file left', async () => {
    const db = await ledger('runs');
    // 600 pending gbifIDs, every third of them listed; the list also holds IDs the ledger lacks, some above 2^33.
    herbdlJson(['ingest', writeMultimedia(join(dir, `runs-${kind}.txt`), Array.from({ length: 600 }, (_, i) => [70_000_000 + i * 7, url('0.jpg')] as [number, string])), '--db', db]);
    const listedIds = Array.from({ length: 12_000 }, (_, i) => (i < 200 ? 70_000_000 + i * 21 : i % 5 === 0 ? 2 ** 33 + i : 80_000_000 + ((i * 7_919) % 12_000)));
    // In no order, every ID twice, the repeats in other batches than their first.
    const lines = [...listedIds, ...listedIds.slice().reverse()].map(String);
    writeFileSync(join(dir, `runs-${kind}.list`), lines.join('\n') + '\n');
    const tmp = mkdtempSync(join(dir, 'tmp-'));
    const saved = process.env.TMPDIR;
    process.env.TMPDIR = tmp;
    const opened = await openLedger(db, { create: false });
    // The built copy, by a path the type checker does not follow: it sorts on a worker thread, which runs compiled JavaScript.
    const built = '../dist/ingest/exclude.js';
    const { excludeFiles } = (await import(built)) as typeof import('../src/ingest/exclude.js');
    try {
      const summary = await excludeFiles([join(dir, `runs-${kind}.list`)], opened, { batch: 1_000 });
      expect(summary).toMatchObject({ read: 24_000, listed: new Set(listedIds).size, excluded: 200, interrupted: false });
      expect(readdirSync(tmp)).toEqual([]);
      // Listed again whole, in one batch: nothing new.
      expect(await excludeFiles([join(dir, `runs-${kind}.list`)], opened)).toMatchObject({ read: 24_000, listed: 0, excluded: 0 });
    } finally {
      if (saved === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = saved;
      await opened.close();
    }
    // The first list went in under a rollback journal (only appended); the ledger is left in WAL, as every other command expects.
    if (kind === 'sqlite') expect(readLedger(db, (d) => d.pragma('journal_mode', { simple: true }))).toBe('wal');
    expect(herbdlJson<Status>(['status', '--db', db]).ids).toMatchObject({ total: 600, pending: 400, excluded: 200 });
  });

  it('a list sparser than the ledger: every listed pending gbifID leaves the queue, read in order where the ledger is sparse and looked up where it is dense', async () => {
    const db = await ledger('dense');
    // 6,000 consecutive gbifIDs (dense), then 300 spread out (sparse); every 7th of the first and every 3rd of the second listed.
    const rows = [...Array.from({ length: 6_000 }, (_, i) => 90_000_000 + i), ...Array.from({ length: 300 }, (_, i) => 90_100_000 + i * 1_000)];
    herbdlJson(['ingest', writeMultimedia(join(dir, `dense-${kind}.txt`), rows.map((id) => [id, url('0.jpg')] as [number, string])), '--db', db]);
    const listed = [...rows.filter((_id, i) => (i < 6_000 ? i % 7 === 0 : i % 3 === 0)), 90_006_001, 95_000_000];
    writeFileSync(join(dir, `dense-${kind}.list`), listed.reverse().join('\n') + '\n');
    const expected = listed.filter((id) => rows.includes(id)).length;
    expect(herbdlJson<ExcludeJson>(['exclude', join(dir, `dense-${kind}.list`), '--db', db])).toMatchObject({ read: listed.length, listed: listed.length, excluded: expected });
    expect(herbdlJson<Status>(['status', '--db', db]).ids).toMatchObject({ total: rows.length, pending: rows.length - expected, excluded: expected });
  });

  it('a list with a line that is not a gbifID is refused in one line, and nothing of it is listed', async () => {
    const db = await ledger('bad');
    herbdlJson(['ingest', writeMultimedia(join(dir, 'bad.txt'), [[8001, url('9.jpg')]]), '--db', db]);
    writeFileSync(join(dir, 'bad-list.txt'), '8001\n12x4\n');
    const r = herbdl(['exclude', join(dir, 'bad-list.txt'), '--db', db]);
    expect(r.status).toBe(3);
    expect(r.stderr.trim().split('\n')).toEqual([`herbdl: ${join(dir, 'bad-list.txt')}: line 2: "12x4" is not a gbifID`]);
    expect(herbdlJson<Status>(['status', '--db', db]).ids).toMatchObject({ pending: 1, excluded: 0 });
  });
});

describe('reading the gbifIDs of multimedia rows in place', () => {
  it('takes what splitting each row into strings took, row by row, over chunks and a full batch', () => {
    const fields = ['7', '0012', ' 44 ', '44\t', '', 'x1', '9007199254740991', '9007199254740992', '12345678901234567', '\u00a0815', '3.0', '-5', '0'];
    const rows: string[] = [];
    for (const [i, f] of fields.entries()) {
      rows.push(`a${i}\tb\t${f}\tc`, `a\tb\t${f}`, `a\tb\t${f}\r`, `a\t${f}`);
    }
    rows.push('', '   ', '\r', '\t\t', 'a\tb\t1\t2\t3\r');
    const text = rows.join('\n') + '\n';
    const column = 2;
    // The rule as the string path kept it: the row without its CR, blank rows passed over, the field by parseGbifId.
    const expected: number[] = [];
    let expectedSkipped = 0;
    for (const raw of text.split('\n').slice(0, -1)) {
      const row = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
      if (row.trim() === '') continue;
      const id = parseGbifId(row.split('\t', column + 1)[column] ?? '');
      if (id === undefined) expectedSkipped++;
      else expected.push(id);
    }
    const chunk = Buffer.from(text);
    // A batch smaller than the rows: reading stops when it fills and goes on from where it stopped.
    const batch = new Float64Array(5);
    const read: number[] = [];
    let skipped = 0;
    for (let pos = 0; pos < chunk.length; ) {
      const at = readColumn(chunk, pos, batch, 0, column);
      read.push(...batch.subarray(0, at.filled));
      skipped += at.skipped;
      pos = at.pos;
    }
    expect(read).toEqual(expected);
    expect(skipped).toBe(expectedSkipped);
    expect(expected.length).toBeGreaterThan(10);
    expect(expectedSkipped).toBeGreaterThan(10);
  });
});

describe('sorting a batch of gbifIDs', () => {
  it('sorts and drops repeats by radix below 2^33 and by the typed array sort above, as a plain sort does', () => {
    let seed = 7;
    const random = () => (seed = (seed * 48_271) % 2_147_483_647) / 2_147_483_647;
    for (const [n, max] of [[100, 1e6], [50_000, 5e9], [50_000, 2 ** 33 - 1], [50_000, 2 ** 33 + 1e6], [3_000, Number.MAX_SAFE_INTEGER]] as const) {
      const ids = Float64Array.from({ length: n }, () => 1 + Math.floor(random() * max));
      ids[n - 1] = ids[0] as number; // a repeat
      const expected = [...new Set(ids)].sort((a, b) => a - b);
      expect(Array.from(sortedUnique(ids)), `${n} IDs up to ${max}`).toEqual(expected);
    }
  });
});
