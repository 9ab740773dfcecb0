/**
 * `export --format parquet`, read back by DuckDB (a reader that shares no
 * code with the writer): the same rows as the CSV export, with proper types
 * and nulls, in row groups.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { herbdl, herbdlAsync, herbdlJson, tempDir } from './helpers/cli.js';
import { imageServers } from './helpers/image-server.js';
import { writeMultimedia } from './helpers/multimedia.js';
import { duck } from './helpers/duckdb.js';

/** RFC 4180 lines as herbdl writes them (fields quoted only when they hold a comma, quote or line end). */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i] as string;
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') (field += '"'), i++;
      else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') row.push(field), (field = '');
    else if (c === '\r') continue;
    else if (c === '\n') row.push(field), rows.push(row), (row = []), (field = '');
    else field += c;
  }
  return rows;
}

describe('herbdl export --format parquet', async () => {
  const [server] = await imageServers(1, 96);
  const dir = tempDir();
  const db = join(dir, 'parquet.db');
  server!.route('/a.jpg', { kind: 'image' });
  server!.route('/b.jpg', { kind: 'image' });
  server!.route('/gone.jpg', { kind: 'status', status: 404 });
  herbdlJson(['ingest', '--db', db, writeMultimedia(join(dir, 'mm.txt'), [
    [5000000000, `${server!.origin}/a.jpg`], // beyond 32 bits
    [5100000001, `${server!.origin}/b.jpg`],
    [5100000001, `${server!.origin}/a.jpg`],
    [5100000002, `${server!.origin}/gone.jpg`],
    [5100000003, 'https://elsewhere.example/pending,with "quotes".jpg'],
  ])]);
  const run = await herbdlAsync(['run', '--db', db, '--out', join(dir, 'images'), '--allow-private-network', '--json', '--limit', '3']);
  const file = join(dir, 'all.parquet');
  const exported = herbdl(['export', '--db', db, '--state', 'all', '--format', 'parquet', '--out-file', file]);

  it('has the CSV export\'s rows, value for value, with nulls where the CSV is empty', async () => {
    expect(run.status).toBe(0);
    expect(exported.status).toBe(0);
    const csv = parseCsv(herbdl(['export', '--db', db, '--state', 'all']).stdout);
    const [header, ...lines] = csv;
    const rows = await duck(`SELECT * FROM '${file}'`);
    expect(rows.map((r) => Object.keys(r))[0]).toEqual(header);
    expect(rows.length).toBe(5);
    expect(rows.map((r) => (header as string[]).map((c) => (r[c] === null ? '' : String(r[c]))))).toEqual(lines);
    // The states the run left (--limit 3): done, failed, and one never tried.
    expect(rows.map((r) => r.state)).toEqual(['done', 'done', 'done', 'failed', 'pending']);
  });

  it('types each column: 64-bit gbifID and bytes, 32-bit NNs and sizes, strings, optional only where a value may be missing', async () => {
    const schema = await duck(`SELECT name, type, repetition_type FROM parquet_schema('${file}') WHERE name <> 'root'`);
    const byName = Object.fromEntries(schema.map((s) => [s.name, `${s.type} ${s.repetition_type}`]));
    expect(byName).toMatchObject({
      gbifID: 'INT64 REQUIRED',
      NN: 'INT32 REQUIRED',
      iiifCanvas: 'INT32 OPTIONAL',
      width: 'INT32 OPTIONAL',
      bytes: 'INT64 OPTIONAL',
      url: 'BYTE_ARRAY REQUIRED',
      sha256: 'BYTE_ARRAY OPTIONAL',
      state: 'BYTE_ARRAY REQUIRED',
    });
    const [big] = await duck(`SELECT gbifID, bytes, width FROM '${file}' WHERE gbifID > 4294967296 ORDER BY gbifID LIMIT 1`);
    expect(big).toMatchObject({ gbifID: 5000000000n, width: 64 });
    expect(typeof big!.bytes).toBe('bigint');
  });

  it('streams a large export in row groups, and --format parquet without --out-file is refused', async () => {
    const big = join(dir, 'big.db');
    herbdlJson(['ingest', '--db', big, writeMultimedia(join(dir, 'big.txt'), Array.from({ length: 120_000 }, (_, i) => [6_000_000 + i, `https://h${i % 7}.example/${i}.jpg`] as const))]);
    const bigFile = join(dir, 'big.parquet');
    expect(herbdl(['export', '--db', big, '--state', 'all', '--format', 'parquet', '--out-file', bigFile]).status).toBe(0);
    const groups = await duck(`SELECT count(DISTINCT row_group_id)::INTEGER AS groups, sum(row_group_num_rows)::INTEGER / count(DISTINCT path_in_schema)::INTEGER AS rows FROM parquet_metadata('${bigFile}')`);
    expect(groups[0]).toEqual({ groups: 3, rows: 120_000 });
    // Read a page of gbifIDs at a time (READ_PAGE): each once, in order.
    const ids = await duck(`SELECT count(DISTINCT gbifID)::INTEGER AS ids, bool_and(ordered)::BOOLEAN AS ordered FROM (SELECT gbifID, gbifID > coalesce(lag(gbifID) OVER (ORDER BY file_row_number), 0) AS ordered FROM read_parquet('${bigFile}', file_row_number = true))`);
    expect(ids[0]).toEqual({ ids: 120_000, ordered: true });
    const r = herbdl(['export', '--db', big, '--format', 'parquet']);
    expect(r.status).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });
});
