/**
 * The counters `status` reads (totals, each host's images by state and its
 * parked gbifIDs, failures by host and code), against a recount of the rows
 * they count. Every command moves them with the rows, in one transaction, so
 * that `status` answers from a few thousand rows at 50M gbifIDs: a counter
 * that drifts is a status that lies. Both ledgers share the SQL.
 */
import type Database from 'better-sqlite3';
import pg from 'pg';
import { readLedger } from './ledger.js';
import { query } from './postgres.js';

const QUERIES = {
  idStates: 'SELECT state, count(*) AS n FROM ids GROUP BY state',
  totals: 'SELECT name, value FROM totals',
  hosts: 'SELECT host_id, images, pending, done, failed, blocked_ids FROM hosts',
  hostRecount: `SELECT host_id, sum(CASE WHEN state <> 4 THEN 1 ELSE 0 END) AS images, sum(CASE WHEN state = 0 THEN 1 ELSE 0 END) AS pending,
                  sum(CASE WHEN state = 1 THEN 1 ELSE 0 END) AS done, sum(CASE WHEN state = 2 THEN 1 ELSE 0 END) AS failed
                FROM images GROUP BY host_id`,
  parked: 'SELECT blocked_host AS host_id, count(*) AS n FROM ids WHERE state = 0 AND blocked_host > 0 GROUP BY blocked_host',
  errors: 'SELECT host_id, code, images FROM error_counts',
  errorRecount: 'SELECT host_id, error_code AS code, count(*) AS n FROM images WHERE state = 2 AND error_code IS NOT NULL GROUP BY host_id, error_code',
  imagesRemoved: 'SELECT count(*) AS n FROM images WHERE state = 4',
} as const;

type Rows = Record<keyof typeof QUERIES, Record<string, unknown>[]>;
const TOTAL_OF_STATE = ['ids_pending', 'ids_done', 'ids_failed', 'ids_excluded', 'ids_removed'];

/** Each counter that differs from its recount, as `what: counted, recounted` (none: the counters are true). */
function drift(rows: Rows): string[] {
  const found: string[] = [];
  const n = (v: unknown) => Number(v ?? 0);
  const totals = new Map(rows.totals.map((r) => [r.name as string, n(r.value)]));
  const byState = new Map(rows.idStates.map((r) => [n(r.state), n(r.n)]));
  TOTAL_OF_STATE.forEach((name, state) => {
    if (n(totals.get(name)) !== n(byState.get(state))) found.push(`${name}: ${n(totals.get(name))}, ${n(byState.get(state))}`);
  });
  if (n(totals.get('images_removed')) !== n(rows.imagesRemoved[0]?.n)) found.push(`images_removed: ${n(totals.get('images_removed'))}, ${n(rows.imagesRemoved[0]?.n)}`);
  const recount = new Map(rows.hostRecount.map((r) => [n(r.host_id), r]));
  const parked = new Map(rows.parked.map((r) => [n(r.host_id), n(r.n)]));
  for (const host of rows.hosts) {
    const id = n(host.host_id);
    for (const column of ['images', 'pending', 'done', 'failed']) {
      if (n(host[column]) !== n(recount.get(id)?.[column])) found.push(`host ${id} ${column}: ${n(host[column])}, ${n(recount.get(id)?.[column])}`);
    }
    if (n(host.blocked_ids) !== n(parked.get(id))) found.push(`host ${id} blocked_ids: ${n(host.blocked_ids)}, ${n(parked.get(id))}`);
  }
  const errors = new Map(rows.errorRecount.map((r) => [`${n(r.host_id)} ${r.code as string}`, n(r.n)]));
  for (const e of rows.errors) {
    const key = `${n(e.host_id)} ${e.code as string}`;
    if (n(e.images) !== n(errors.get(key))) found.push(`error_counts ${key}: ${n(e.images)}, ${n(errors.get(key))}`);
    errors.delete(key);
  }
  for (const [key, count] of errors) found.push(`error_counts ${key}: 0, ${count}`);
  return found;
}

/** The `n` of a one-row count, from a SQLite ledger file or a PostgreSQL URL. */
export async function countIn(db: string, sql: string): Promise<number> {
  if (db.includes('://')) return Number((await query<{ n: string }>(db, sql))[0]!.n);
  return readLedger(db, (l) => (l.prepare(sql).get() as { n: number }).n);
}

export function sqliteCounterDrift(db: Database.Database): string[] {
  return drift(Object.fromEntries(Object.entries(QUERIES).map(([k, sql]) => [k, db.prepare(sql).all() as Record<string, unknown>[]])) as Rows);
}

/** `whole`: only a ledger that is one (its tables there, no bulk load half done); else [] for anything else a test left. */
export async function pgCounterDrift(url: string, options: { whole?: boolean } = {}): Promise<string[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    // One snapshot for every count: a worker still writing is seen at one moment.
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    if (options.whole) {
      const tables = (await client.query("SELECT count(*)::int AS n FROM pg_tables WHERE schemaname = current_schema() AND tablename IN ('ids', 'images', 'hosts', 'totals', 'error_counts', 'herbdl_meta')")).rows[0].n as number;
      if (tables < 6) return [];
      const bulk = (await client.query("SELECT value FROM herbdl_meta WHERE name = 'derived_complete'")).rows[0]?.value;
      if (bulk === '0') return [];
    }
    const rows: Partial<Rows> = {};
    for (const [k, sql] of Object.entries(QUERIES)) rows[k as keyof Rows] = (await client.query(sql)).rows;
    return drift(rows as Rows);
  } finally {
    await client.end();
  }
}
