/**
 * `herbdl labels`: fields of a real GBIF download's occurrence file kept per
 * gbifID, on both ledgers, read back through status and export against an
 * independent reading of the file; a load that fails, is killed or is taken
 * over by a second load leaves the labels before it whole.
 */
import { readdirSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { herbdl, herbdlAsync, herbdlJson, spawnHerbdl, tempDir } from './helpers/cli.js';
import { freshDatabase, query } from './helpers/postgres.js';
import { GBIF_SAMPLES, sampleText } from './helpers/samples.js';
import { writeZip } from './helpers/zip.js';
import { duck } from './helpers/duckdb.js';

const SAMPLE = join(GBIF_SAMPLES, 'rgbif-0258360-220831081235567');

/** The sample's occurrence rows as a plain split of its lines gives them: gbifID -> column -> value. */
function occurrences(): Map<number, Record<string, string>> {
  const [header, ...lines] = sampleText(join(SAMPLE, 'occurrence.txt.gz')).split('\n');
  const names = (header as string).split('\t');
  const rows = new Map<number, Record<string, string>>();
  for (const line of lines) {
    if (line === '') continue;
    const cells = line.split('\t');
    rows.set(Number(cells[0]), Object.fromEntries(names.map((n, i) => [n, cells[i] ?? ''])));
  }
  return rows;
}

/** The ledger's gbifIDs, as its export lists them. */
function ledgerIds(db: string): Set<number> {
  return new Set(herbdl(['export', '--db', db, '--state', 'all', '--format', 'jsonl']).stdout.trim().split('\n').map((l) => (JSON.parse(l) as { gbifID: number }).gbifID));
}

/** An occurrence file of `count` rows (gbifID, scientificName, family), the names saying which file they came from. */
function bigOccurrences(path: string, count: number, tag: string): string {
  const rows = ['gbifID\tscientificName\tfamily'];
  for (let i = 0; i < count; i++) rows.push(`${1_000_000 + i}\t${tag} species ${i}\t${tag}aceae`);
  writeFileSync(path, rows.join('\n') + '\n');
  return path;
}

interface Json {
  fields: string[];
  rows: number;
  skipped: number;
  labelled: number;
  interrupted: boolean;
}

const LEDGERS: [string, (dir: string) => Promise<string>][] = [
  ['SQLite', async (dir) => join(dir, 'labels.db')],
  ['PostgreSQL', async () => freshDatabase('labels')],
];

for (const [label, ledgerIn] of LEDGERS) {
  describe(`herbdl labels on ${label}`, async () => {
    const dir = tempDir();
    const db = await ledgerIn(dir);
    herbdlJson(['ingest', '--db', db, join(SAMPLE, 'multimedia.txt.gz')]);
    const occ = occurrences();
    const ids = ledgerIds(db);
    const both = [...ids].filter((id) => occ.has(id));

    it('keeps the default fields the download has, for every gbifID the occurrence file lists, as the file says them', async () => {
      const summary = herbdlJson<Json>(['labels', '--db', db, SAMPLE]);
      expect(summary).toMatchObject({ fields: ['scientificName', 'taxonKey', 'taxonRank', 'kingdom', 'family', 'genus', 'species', 'countryCode', 'institutionCode', 'catalogNumber'], rows: occ.size, skipped: 0, labelled: both.length, interrupted: false });
      expect(both.length).toBeGreaterThan(500);
      expect(both.length).toBeLessThan(ids.size);
      expect(herbdlJson<{ labels: unknown }>(['status', '--db', db]).labels).toEqual({ fields: summary.fields, ids: both.length });
      expect(herbdl(['status', '--db', db]).stdout).toMatch(/labels {4}scientificName, taxonKey, .*: \d+ gbifIDs labelled when they were loaded/);
      // Export: a column per field, the occurrence's value for its gbifID, empty where the file has no row for it.
      const lines = herbdl(['export', '--db', db, '--state', 'all', '--format', 'jsonl']).stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(lines.length).toBeGreaterThan(1000);
      for (const line of lines) {
        const row = occ.get(line.gbifID as number);
        for (const field of summary.fields) expect(line[field]).toBe(row ? row[field] : null);
      }
      // Parquet has them too, as strings, read back by DuckDB.
      const parquet = join(dir, 'labels.parquet');
      expect(herbdl(['export', '--db', db, '--state', 'all', '--format', 'parquet', '--out-file', parquet]).status).toBe(0);
      const read = await duck(`SELECT gbifID, scientificName, family FROM read_parquet('${parquet}') ORDER BY gbifID, NN`);
      expect(read.map((r) => [Number(r.gbifID), r.scientificName, r.family])).toEqual(lines.map((l) => [l.gbifID, l.scientificName, l.family]));
    });

    it('replaces the labels whole with the next load, which may name its own fields (one an export column has taken is prefixed; one named twice, or the gbifID, kept once)', () => {
      const summary = herbdlJson<Json>(['labels', '--db', db, join(SAMPLE, 'occurrence.txt.gz'), '--fields', 'family,license,decimalLatitude,Family,gbifID']);
      expect(summary).toMatchObject({ fields: ['family', 'license', 'decimalLatitude'], labelled: both.length });
      const csv = herbdl(['export', '--db', db, '--state', 'all']).stdout.split('\r\n');
      expect((csv[0] as string).split(',').slice(-4)).toEqual(['error', 'family', 'occurrence_license', 'decimalLatitude']);
      const jsonl = herbdl(['export', '--db', db, '--state', 'all', '--format', 'jsonl']).stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
      const labelled = jsonl.find((l) => occ.has(l.gbifID as number)) as Record<string, unknown>;
      const row = occ.get(labelled.gbifID as number) as Record<string, string>;
      expect([labelled.family, labelled.occurrence_license, labelled.decimalLatitude, labelled.scientificName]).toEqual([row.family, row.license, row.decimalLatitude, undefined]);
    });

    it('reads the occurrence file of a download zip, found through its meta.xml or by name, or a simple download; a zip without one, or commas, refused in one line', async () => {
      const text = (name: string) => sampleText(join(SAMPLE, name));
      const meta = sampleText(join(SAMPLE, 'meta.xml'));
      const whole = await writeZip(join(dir, 'download.zip'), { 'meta.xml': meta, 'multimedia.txt': text('multimedia.txt.gz'), 'occurrence.txt': text('occurrence.txt.gz') });
      expect(herbdlJson<Json>(['labels', '--db', db, whole, '--fields', 'scientificName'])).toMatchObject({ rows: occ.size, labelled: both.length });
      const noMeta = await writeZip(join(dir, 'no-meta.zip'), { 'multimedia.txt': text('multimedia.txt.gz'), 'occurrence.txt': text('occurrence.txt.gz') });
      expect(herbdlJson<Json>(['labels', '--db', db, noMeta, '--fields', 'family'])).toMatchObject({ rows: occ.size, labelled: both.length, fields: ['family'] });
      const without = await writeZip(join(dir, 'no-occurrence.zip'), { 'meta.xml': meta, 'multimedia.txt': text('multimedia.txt.gz') });
      const refused = herbdl(['labels', '--db', db, without]);
      expect(refused.status).toBe(3);
      expect(refused.stderr.trim().split('\n')).toEqual([expect.stringMatching(/no-occurrence\.zip: meta\.xml names occurrence\.txt, which is not in the archive$/)]);
      expect(herbdlJson<{ labels: { fields: string[] } }>(['status', '--db', db]).labels.fields).toEqual(['family']);
      // A GBIF simple download: its one tab-separated .csv of occurrences, zipped with no meta.xml.
      const simple = await writeZip(join(dir, 'simple.zip'), { '0012345-240101120000000.csv': text('occurrence.txt.gz') });
      expect(herbdlJson<Json>(['labels', '--db', db, simple, '--fields', 'family'])).toMatchObject({ rows: occ.size, labelled: both.length });
      // A file of commas is said to be one.
      const commas = join(dir, 'commas.csv');
      writeFileSync(commas, 'gbifID,family\n1,Fagaceae\n');
      const refusedCommas = herbdl(['labels', '--db', db, commas]);
      expect(refusedCommas.status).toBe(3);
      expect(refusedCommas.stderr.trim().split('\n')).toEqual([expect.stringMatching(/commas\.csv: its header line is separated by commas, not tabs as GBIF writes its files$/)]);
    });

    it('refuses a field the file lacks, or a file that is no occurrence file, in one line, keeping the labels it had', () => {
      const before = herbdlJson<{ labels: unknown }>(['status', '--db', db]).labels;
      const missing = herbdl(['labels', '--db', db, SAMPLE, '--fields', 'family,scientificNom']);
      expect(missing.status).toBe(3);
      expect(missing.stderr.trim().split('\n')).toEqual([expect.stringMatching(/occurrence\.txt\.gz: its header line has no scientificNom column \(it has 259 columns.*\); name fields as the header does$/)]);
      const notOccurrence = herbdl(['labels', '--db', db, join(SAMPLE, 'multimedia.txt.gz'), '--fields', 'family']);
      expect(notOccurrence.status).toBe(3);
      expect(notOccurrence.stderr.trim().split('\n')).toEqual([expect.stringMatching(/multimedia\.txt\.gz: its header line has no family column/)]);
      expect(herbdlJson<{ labels: unknown }>(['status', '--db', db]).labels).toEqual(before);
    });

    it('taken over by a second load while it runs, stops in one line; the labels are the second load\'s, never a mix', async () => {
      const first = bigOccurrences(join(dir, 'first.txt'), 600_000, 'First');
      const second = bigOccurrences(join(dir, 'second.txt'), 1_000, 'Second');
      const slow = spawnHerbdl(['labels', '--db', db, first, '--fields', 'scientificName,family', '--json']);
      // Once the first load has committed some rows of its own, the second starts and ends.
      const deadline = Date.now() + 60_000;
      while (Date.now() < deadline && slow.exitCode === null && (await loadingRows(db)) === 0) await new Promise((r) => setTimeout(r, 10));
      expect(slow.exitCode).toBeNull();
      // Held between two of its batches (stopped outside a transaction) while the second load runs whole.
      expect(await pauseBetweenBatches(slow.pid as number, db)).toBe(true);
      expect(herbdlJson<Json>(['labels', '--db', db, second, '--fields', 'scientificName,family'])).toMatchObject({ rows: 1_000 });
      process.kill(slow.pid as number, 'SIGCONT');
      let stderr = '';
      slow.stderr?.on('data', (d) => (stderr += String(d)));
      const code = await new Promise<number | null>((resolve) => slow.once('exit', resolve));
      expect(code).toBe(4);
      expect(stderr.trim().split('\n')).toEqual([expect.stringMatching(/another herbdl labels began loading labels into this ledger after this one; it carries on, and this one stops/)]);
      const names = new Set(herbdl(['export', '--db', db, '--state', 'all', '--format', 'jsonl']).stdout.trim().split('\n').map((l) => (JSON.parse(l) as { scientificName: string | null }).scientificName));
      // The sample's gbifIDs are not in these files: every one without labels now.
      expect([...names]).toEqual([null]);
      expect(await labelRows(db)).toEqual({ rows: 1_000, first: 0 });
    });
  });
}

/** Whether no transaction is open on the ledger but the test's own (SQLite: the write lock is free; PostgreSQL: every other session idle). */
async function noTransaction(db: string): Promise<boolean> {
  if (db.startsWith('postgres')) {
    const [row] = await query<{ n: string }>(db, "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND state <> 'idle'");
    return Number(row?.n) === 0;
  }
  const sqlite = new Database(db, { timeout: 0 });
  try {
    sqlite.exec('BEGIN IMMEDIATE');
    sqlite.exec('ROLLBACK');
    return true;
  } catch {
    return false;
  } finally {
    sqlite.close();
  }
}

/** Stops a process (SIGSTOP) at a moment it holds no transaction open; false if no such moment came in 500 tries. */
async function pauseBetweenBatches(pid: number, db: string): Promise<boolean> {
  for (let attempt = 0; attempt < 500; attempt++) {
    process.kill(pid, 'SIGSTOP');
    if (await noTransaction(db)) return true;
    process.kill(pid, 'SIGCONT');
    await new Promise((r) => setTimeout(r, 3));
  }
  return false;
}

/** Rows a load has written so far: to its loading table (PostgreSQL), to its scratch file beside the ledger (SQLite); 0 when there is none. */
async function loadingRows(db: string): Promise<number> {
  if (db.startsWith('postgres')) {
    const [row] = await query<{ n: string }>(db, "SELECT CASE WHEN to_regclass('labels_loading') IS NULL THEN 0 ELSE (SELECT count(*) FROM labels_loading) END AS n").catch(() => [{ n: '0' }]);
    return Number(row?.n ?? 0);
  }
  let rows = 0;
  for (const name of readdirSync(dirname(db)).filter((n) => n.startsWith(`${basename(db)}.labels-`))) {
    try {
      const scratch = new Database(join(dirname(db), name), { readonly: true, timeout: 0 });
      try {
        rows += scratch.prepare('SELECT count(*) FROM rows').pluck().get() as number;
      } finally {
        scratch.close();
      }
    } catch {
      // Being written (no journal: the writer's lock), or gone: counted at the next look.
    }
  }
  return rows;
}

/** The mark of the load under way in a SQLite ledger. */
function loadMark(db: string): string | undefined {
  const sqlite = new Database(db, { readonly: true });
  try {
    return sqlite.prepare("SELECT value FROM ledger_state WHERE name = 'labels_loading'").pluck().get() as string | undefined;
  } finally {
    sqlite.close();
  }
}

/** How many label rows the ledger has, and how many of them came from the first file. */
async function labelRows(db: string): Promise<{ rows: number; first: number }> {
  const sql = "SELECT count(*) AS rows, count(*) FILTER (WHERE vals LIKE '%First%') AS first FROM labels";
  if (db.startsWith('postgres')) {
    const [row] = await query<{ rows: string; first: string }>(db, sql);
    return { rows: Number(row?.rows), first: Number(row?.first) };
  }
  const sqlite = new Database(db, { readonly: true });
  try {
    const row = sqlite.prepare(sql).get() as { rows: number; first: number };
    return { rows: row.rows, first: row.first };
  } finally {
    sqlite.close();
  }
}

describe('herbdl labels: kill -9 and Ctrl-C', async () => {
  const dir = tempDir();
  const db = join(dir, 'killed.db');
  herbdlJson(['ingest', '--db', db, join(SAMPLE, 'multimedia.txt.gz')]);
  const occ = occurrences();

  it('killed half-way, leaves the labels it had; the next load starts over and ends', async () => {
    herbdlJson(['labels', '--db', db, SAMPLE, '--fields', 'scientificName']);
    const big = bigOccurrences(join(dir, 'big.txt'), 600_000, 'Big');
    const child = spawnHerbdl(['labels', '--db', db, big, '--fields', 'scientificName,family']);
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline && child.exitCode === null && (await loadingRows(db)) === 0) await new Promise((r) => setTimeout(r, 10));
    expect(child.exitCode).toBeNull();
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    expect(await loadingRows(db)).toBeGreaterThan(0);
    const status = herbdlJson<{ labels: { fields: string[]; ids: number } }>(['status', '--db', db]);
    expect(status.labels.fields).toEqual(['scientificName']);
    const some = [...ledgerIds(db)].find((id) => occ.has(id)) as number;
    const row = JSON.parse(herbdl(['export', '--db', db, '--state', 'all', '--format', 'jsonl']).stdout.trim().split('\n').find((l) => l.startsWith(`{"gbifID":${some},`)) as string) as Record<string, unknown>;
    expect(row.scientificName).toBe(occ.get(some)?.scientificName);
    // Ctrl-C stops it cleanly, exit 130, the labels as they were (sent once the new load has rows of its own: its mark is not the killed one's).
    const killedMark = loadMark(db);
    const stopped = spawnHerbdl(['labels', '--db', db, big, '--fields', 'family']);
    while (Date.now() < deadline && stopped.exitCode === null && (loadMark(db) === killedMark || (await loadingRows(db)) === 0)) await new Promise((r) => setTimeout(r, 10));
    stopped.kill('SIGINT');
    expect(await new Promise((r) => stopped.once('exit', r))).toBe(130);
    expect(herbdlJson<{ labels: { fields: string[] } }>(['status', '--db', db]).labels.fields).toEqual(['scientificName']);
    const done = await herbdlAsync(['labels', '--db', db, big, '--fields', 'scientificName,family', '--json']);
    expect(JSON.parse(done.stdout)).toMatchObject({ rows: 600_000, labelled: 0, interrupted: false });
    expect(await labelRows(db)).toEqual({ rows: 600_000, first: 0 });
    expect(await loadingRows(db)).toBe(0);
  });
});
