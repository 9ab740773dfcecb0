/**
 * Connecting to a shared ledger: a small pool per process, the usual libpq
 * settings honoured (PGHOST, PGUSER, PGPASSWORD, ~/.pgpass via pg), and every
 * way it can go wrong said in one line that names the server, never the password.
 */
import pg from 'pg';
import { isConnectionLoss, LedgerError } from '../../errors.js';
import { MIGRATIONS, SCHEMA_VERSION } from './schema.js';

/** The URL as it may be shown: without its password. */
export function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return 'postgres://…';
  }
}

export function describeConnectFailure(url: string, err: unknown): LedgerError {
  const e = err as { code?: string; message?: string };
  const where = redact(url);
  const say = (problem: string, code: string) => new LedgerError(`${where}: ${problem}`, code, { cause: err });
  switch (e.code) {
    case 'ECONNREFUSED':
    case 'ENOTFOUND':
    case 'EHOSTUNREACH':
    case 'ETIMEDOUT':
    case 'EAI_AGAIN':
      return say(`cannot reach the PostgreSQL server (${e.code})`, 'ledger_unreachable');
    case '28P01':
    case '28000':
      return say(`the server refused the credentials (${e.message})`, 'ledger_auth');
    case '53300':
      return say(`the server has no connection free (${e.message}): each herbdl worker holds up to ${POOL_CONNECTIONS}; raise max_connections or start fewer workers`, 'ledger_full');
    case '3D000':
      return say(`${e.message}; create it first (createdb)`, 'ledger_missing');
    default:
      return say(`cannot open ledger (${e.message ?? String(err)})`, 'ledger_open');
  }
}

/**
 * What a pool knows of its ledger: the server, as it may be shown, and while
 * a run holds its lease, what decides how long a lost server is waited for.
 */
interface PoolState {
  readonly where: string;
  hold?: () => void;
  /** Its connections, so abandon() can end them. */
  readonly clients: Set<pg.PoolClient>;
}
const pools = new WeakMap<pg.Pool, PoolState>();

/** Connections a ledger's pool holds at most: six for a run's statements, one held by its heartbeat (worker-lease.ts). */
export const POOL_CONNECTIONS = 7;

export function createPool(url: string, max = POOL_CONNECTIONS): pg.Pool {
  // bigint columns (gbifIDs, epoch ms) come back as numbers: every value herbdl keeps is below 2^53.
  const pool = new pg.Pool({ connectionString: url, max, connectionTimeoutMillis: 15_000, idleTimeoutMillis: 30_000, application_name: 'herbdl' });
  pool.on('error', () => {
    // An idle client's connection dropped: the pool replaces it; the next query says what is wrong.
  });
  // A connection the server ends while it is checked out (a restart, pg_terminate_backend) between
  // two statements emits 'error' on its client, which with no listener ends the process with a
  // stack trace. The client is then unusable: its next statement fails, and the caller decides
  // what that means (the pool drops it when it comes back).
  const state: PoolState = { where: redact(url), clients: new Set() };
  pool.on('connect', (client) => {
    client.on('error', () => {});
    state.clients.add(client);
  });
  pool.on('remove', (client) => state.clients.delete(client));
  pools.set(pool, state);
  // Every statement sent through the pool rides out a lost server as riding() says (herbdl sends a text and its values, or a query's config).
  const send = pool.query.bind(pool) as (query: unknown, values?: unknown[]) => Promise<pg.QueryResult>;
  pool.query = ((query: unknown, values?: unknown[]) => riding(pool, () => send(query, values))) as pg.Pool['query'];
  return pool;
}

/**
 * While a run holds its lease, a statement that fails because the server went
 * away (a restart, a failover, a dropped connection) is sent again once it is
 * back, so a restart of the database does not end every worker of a cluster.
 * `hold` throws when the lease may have run out (WorkerLease.check): then the
 * worker stops, as it would for any lost lease. Sending again is safe because
 * a failed statement or transaction did not commit, and in the rare case that
 * a commit went through and only its answer was lost: a transaction asks the
 * server what became of it and is not sent again if it went through
 * (transaction(), which claims use too: made again, a claim took other IDs,
 * and the first stayed with this worker, undone, until its end); a single
 * statement sent again does no harm, as the run's statements set values
 * rather than add to them, and what adds to counters counts only the rows it
 * changed.
 */
export function rideOut(pool: pg.Pool, hold: (() => void) | undefined): void {
  const state = pools.get(pool);
  if (state) state.hold = hold;
}

/**
 * Ends every connection of the pool now, and so every statement on them: a
 * worker whose lease may have run out stops at once. Without it, a server
 * that stops answering without closing its connections (frozen, its storage
 * hung, a network that drops packets silently) held the worker in a
 * statement until the server came back, however long that was.
 */
export function abandon(pool: pg.Pool): void {
  for (const client of pools.get(pool)?.clients ?? []) (client as unknown as pg.Client).connection.stream.destroy();
}

/** A lease that could not be renewed because the server is away, said with why the server is away: one line, whichever part of the worker noticed first. */
export function serverAway(pool: pg.Pool, away: Error, stop: Error): LedgerError {
  return new LedgerError(`${pools.get(pool)?.where ?? 'the ledger'}: the server is away (${away.message}) and ${stop.message}`, 'lease_lost', { cause: away });
}

const RIDE_OUT_FIRST_MS = 250;
const RIDE_OUT_MAX_MS = 5_000;

async function riding<T>(pool: pg.Pool, work: () => Promise<T>): Promise<T> {
  const state = pools.get(pool);
  for (let wait = RIDE_OUT_FIRST_MS; ; wait = Math.min(wait * 2, RIDE_OUT_MAX_MS)) {
    try {
      return await work();
    } catch (err) {
      if (!state?.hold || !isConnectionLoss(err)) throw err;
      try {
        state.hold();
      } catch (stop) {
        throw serverAway(pool, err as Error, stop as Error);
      }
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
  }
}

export const types = pg.types;
types.setTypeParser(types.builtins.INT8, (v) => Number(v));
types.setTypeParser(types.builtins.NUMERIC, (v) => Number(v));

/**
 * Runs `work` in a transaction, once more if it lost a deadlock or a
 * serialization race (both only lose time), and again while the server is
 * away if a run holds its lease (riding()).
 *
 * A COMMIT whose answer was lost with its connection (the server crashed just
 * after the commit reached its disk, a network that failed at that moment) may
 * have gone through or not. Sent again, a transaction fenced by the claim would
 * find its gbifIDs no longer held, by its own first commit, and stop the worker
 * as if its lease had run out. So the transaction's id is asked for before the
 * COMMIT, and after such a loss the server is asked what became of it (as the
 * PostgreSQL manual suggests for exactly this case): committed, the first
 * result stands; aborted, the work is done again.
 */
export async function transaction<T>(pool: pg.Pool, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  let unanswered: { xid: string; result: T } | undefined;
  return riding(pool, async () => {
    if (unanswered) {
      const committed = await committedAfterAll(pool, unanswered.xid);
      const { result } = unanswered;
      unanswered = undefined;
      if (committed) return result;
    }
    for (let attempt = 1; ; attempt++) {
      const client = await pool.connect();
      let committing: { xid: string | null; result: T } | undefined;
      try {
        await client.query('BEGIN');
        const result = await work(client);
        // null for a transaction that wrote nothing: doing it again changes nothing.
        const xid = (await client.query('SELECT pg_current_xact_id_if_assigned()::text AS xid')).rows[0].xid as string | null;
        committing = { xid, result };
        await client.query('COMMIT');
        return result;
      } catch (err) {
        await client.query('ROLLBACK').catch(() => {});
        if (committing?.xid && isConnectionLoss(err)) unanswered = { xid: committing.xid, result: committing.result };
        const code = (err as { code?: string }).code;
        if (attempt < 5 && (code === '40P01' || code === '40001')) continue;
        throw err;
      } finally {
        client.release();
      }
    }
  });
}

/**
 * Whether transaction `xid`, whose COMMIT was sent, went through. A backend
 * still finishing it (its client gone, the server up) says so for a moment;
 * a crash's recovery aborts what did not reach the disk.
 */
async function committedAfterAll(pool: pg.Pool, xid: string): Promise<boolean> {
  for (;;) {
    const { rows } = await pool.query('SELECT pg_xact_status($1::xid8) AS status', [xid]);
    const status = rows[0].status as 'committed' | 'aborted' | 'in progress' | null;
    if (status !== 'in progress') return status === 'committed';
    pools.get(pool)?.hold?.();
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/**
 * Brings the schema to this herbdl's version: refuses a database of another
 * program, or a ledger from a newer herbdl, before writing anything.
 */
export async function migrate(pool: pg.Pool, url: string, create: boolean): Promise<void> {
  const where = redact(url);
  await transaction(pool, async (client) => {
    // One migrator at a time: workers started together race here.
    await client.query('SELECT pg_advisory_xact_lock(1751478883)');
    const meta = await client.query("SELECT to_regclass('herbdl_meta') IS NOT NULL AS present");
    let version = 0;
    if (meta.rows[0].present) {
      const row = await client.query("SELECT value FROM herbdl_meta WHERE name = 'schema_version'");
      version = Number(row.rows[0]?.value ?? 0);
    } else {
      const tables = await client.query("SELECT count(*)::int AS n FROM pg_tables WHERE schemaname = current_schema()");
      if (tables.rows[0].n > 0) throw new LedgerError(`${where}: the database holds tables of another program, not a herbdl ledger; give herbdl a database of its own`, 'not_a_ledger');
      if (!create) throw new LedgerError(`${where}: no ledger here; run 'herbdl ingest <multimedia.txt> --db <url>' first`, 'ledger_missing');
    }
    if (version > SCHEMA_VERSION) {
      throw new LedgerError(`${where}: ledger schema ${version} is newer than this herbdl understands (${SCHEMA_VERSION}); upgrade herbdl`, 'ledger_too_new');
    }
    for (let v = version; v < SCHEMA_VERSION; v++) await client.query(MIGRATIONS[v] as string);
    if (version < SCHEMA_VERSION) {
      await client.query(
        "INSERT INTO herbdl_meta (name, value) VALUES ('schema_version', $1) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        [String(SCHEMA_VERSION)],
      );
    }
  });
}
