/**
 * Connecting to a shared ledger: a small pool per process, the usual libpq
 * settings honoured (PGHOST, PGUSER, PGPASSWORD, ~/.pgpass via pg; TLS and
 * what is said when the server will not have us: server-url.ts), a server
 * that goes away ridden out, and transactions whose COMMIT's answer is lost
 * told apart.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { isConnectionLoss, LedgerError } from '../../errors.js';
import { MIGRATIONS, SCHEMA_VERSION } from './schema.js';
import { libpqTls, POOL_CONNECTIONS, redact } from './server-url.js';

/**
 * What a pool knows of its ledger: the server, as it may be shown, and while
 * a run holds its lease, what decides how long a lost server is waited for.
 */
interface PoolState {
  readonly where: string;
  hold?: () => void;
  /** Its connections, so abandon() can end them. */
  readonly clients: Set<pg.ClientBase>;
}
const pools = new WeakMap<pg.Pool, PoolState>();

/**
 * Timeouts a server's administrator may set for every session (in
 * postgresql.conf, or for the database or role), which herbdl's sessions set
 * aside, as pg_dump's do: at 50M rows an index build or ANALYZE takes
 * minutes, an ingest waits for another's lock and a first run for the
 * indexes being built, by design. Before, under a database's
 * `statement_timeout` of 300 ms, an ingest failed as it waited for
 * another's lock, and a first run as it waited for the indexes. The
 * heartbeat still bounds its own statements (worker-lease.ts).
 * Those this server does not have (transaction_timeout came in 17) are
 * skipped.
 */
const NO_TIMEOUTS = `SELECT set_config(name, '0', false) FROM pg_settings
  WHERE name IN ('statement_timeout', 'lock_timeout', 'idle_in_transaction_session_timeout', 'idle_session_timeout', 'transaction_timeout')`;

export function createPool(url: string, max = POOL_CONNECTIONS): pg.Pool {
  const state: PoolState = { where: redact(url), clients: new Set() };
  // bigint columns (gbifIDs, epoch ms) come back as numbers: every value herbdl keeps is below 2^53.
  const pool = new pg.Pool({
    connectionString: libpqTls(url),
    max,
    connectionTimeoutMillis: 15_000,
    idleTimeoutMillis: 30_000,
    application_name: 'herbdl',
    // Awaited before the connection is first handed out (a statement queued beside another is deprecated in
    // pg). Known to abandon() from here on: a server that freezes now must not hold this first statement.
    onConnect: async (client) => {
      state.clients.add(client);
      try {
        await client.query(NO_TIMEOUTS);
      } catch (err) {
        state.clients.delete(client); // the pool ends it
        throw err;
      }
    },
  });
  pool.on('error', () => {
    // An idle client's connection dropped: the pool replaces it; the next query says what is wrong.
  });
  // A connection the server ends while it is checked out (a restart, pg_terminate_backend) between
  // two statements emits 'error' on its client, which with no listener ends the process with a
  // stack trace. The client is then unusable: its next statement fails, and the caller decides
  // what that means (the pool drops it when it comes back).
  pool.on('connect', (client) => {
    client.on('error', () => {});
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
  // The lease's own check may have said it already (WorkerLease.check): said once, not wrapped again.
  if (toldAway.has(stop)) return stop as LedgerError;
  const told = new LedgerError(`${pools.get(pool)?.where ?? 'the ledger'}: the server is away (${away.message}) and ${stop.message}`, 'lease_lost', { cause: away });
  toldAway.add(told);
  return told;
}
const toldAway = new WeakSet<Error>();

const RIDE_OUT_FIRST_MS = 250;
const RIDE_OUT_MAX_MS = 5_000;

/** A deadlock (40P01) or a serialization failure (40001): the statement or transaction that lost was undone whole, and only lost time. */
function lostARace(err: unknown): boolean {
  const code = (err as { code?: string }).code;
  return code === '40P01' || code === '40001';
}
const RACE_TRIES = 5;

/**
 * Sends a statement or a transaction (`work`), and again, at once, if it lost
 * a deadlock or a serialization race, up to RACE_TRIES in all, whether or not
 * a run holds a lease; and again while the server is away, as rideOut() says.
 */
async function riding<T>(pool: pg.Pool, work: () => Promise<T>): Promise<T> {
  const state = pools.get(pool);
  let races = 0;
  let wait = RIDE_OUT_FIRST_MS;
  for (;;) {
    try {
      return await work();
    } catch (err) {
      // Before, only a transaction was sent again so: a worker's set-aside (its gbifIDs, then its hosts' counters, in one
      // statement) that lost a deadlock to another transaction ended the worker.
      if (lostARace(err) && ++races < RACE_TRIES) continue;
      if (!state?.hold || !isConnectionLoss(err)) throw err;
      try {
        state.hold();
      } catch (stop) {
        throw serverAway(pool, err as Error, stop as Error);
      }
      await new Promise((resolve) => setTimeout(resolve, wait));
      // Doubled by the server's absence only: a lost race is sent again at once and leaves the wait as it was.
      wait = Math.min(wait * 2, RIDE_OUT_MAX_MS);
    }
  }
}

export const types = pg.types;
types.setTypeParser(types.builtins.INT8, (v) => Number(v));
types.setTypeParser(types.builtins.NUMERIC, (v) => Number(v));

/**
 * What marks a connection's transactions (commit_marks): a random id for
 * the connection, and the number of its last transaction that wrote.
 */
const marks = new WeakMap<pg.PoolClient, { conn: string; seq: number }>();

function markOf(client: pg.PoolClient): { conn: string; seq: number } {
  let mark = marks.get(client);
  if (!mark) marks.set(client, (mark = { conn: randomBytes(8).readBigInt64BE().toString(), seq: 0 }));
  return mark;
}

/** A transaction that wrote, at its COMMIT: what to ask the server if the answer is lost, and what the work returned. */
interface Committing<T> {
  readonly xid: string;
  readonly conn: string;
  readonly seq: number;
  readonly result: T;
}

/**
 * Runs `work` in a transaction, again if it lost a deadlock or a
 * serialization race (both only lose time), and again while the server is
 * away if a run holds its lease (riding()).
 *
 * A COMMIT whose answer was lost with its connection (the server crashed just
 * after the commit reached its disk, a network that failed at that moment) may
 * have gone through or not. Sent again, a transaction fenced by the claim would
 * find its gbifIDs no longer held, by its own first commit, and stop the worker
 * as if its lease had run out. So a transaction that wrote something writes
 * its connection's mark just before its COMMIT (commit_marks: the
 * connection's id and the transaction's number), and after such a loss the
 * mark says what became of it: committed, the first result stands; not, the
 * work is done again. Its transaction id alone could not say: after a crash,
 * an id that never reached the disk is given to the next transaction, and
 * pg_xact_status then answers for that one (measured: a transaction lost in a
 * crash, its id taken by the first one after recovery, "committed"). The id
 * still says when the lost transaction is still ending (the server up, its
 * client gone): the mark is read once it has. `marked: false` is for the
 * migrations, which make the table and are safe to run again.
 */
export async function transaction<T>(pool: pg.Pool, work: (client: pg.PoolClient) => Promise<T>, options: { marked?: boolean } = {}): Promise<T> {
  const marked = options.marked ?? true;
  let unanswered: Committing<T> | undefined;
  return riding(pool, async () => {
    if (unanswered) {
      const committed = await committedAfterAll(pool, unanswered);
      const { result } = unanswered;
      unanswered = undefined;
      if (committed) return result;
    }
    const client = await pool.connect();
    let committing: Committing<T> | undefined;
    try {
      await client.query('BEGIN');
      const result = await work(client);
      if (marked) {
        const mark = markOf(client);
        // Only a transaction that wrote: a read-only one has nothing to lose, and its COMMIT waits for no disk.
        const written = await client.query(
          `INSERT INTO commit_marks (conn, seq, at) SELECT $1, $2, herbdl_now() WHERE pg_current_xact_id_if_assigned() IS NOT NULL
           ON CONFLICT (conn) DO UPDATE SET seq = excluded.seq, at = excluded.at RETURNING pg_current_xact_id()::text AS xid`,
          [mark.conn, mark.seq + 1],
        );
        const xid = written.rows[0]?.xid as string | undefined;
        if (xid) committing = { xid, conn: mark.conn, seq: ++mark.seq, result };
      }
      await client.query('COMMIT');
      return result;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {});
      if (committing && isConnectionLoss(err)) unanswered = committing;
      // A lost deadlock or serialization race is done again by riding(), as a lost server is waited for.
      throw err;
    } finally {
      client.release();
    }
  });
}

/**
 * Whether a transaction whose COMMIT was sent went through. A backend still
 * finishing it (its client gone, the server up) says so for a moment: its id
 * is in progress; then its connection's mark is there with its number, or not.
 */
async function committedAfterAll(pool: pg.Pool, lost: Committing<unknown>): Promise<boolean> {
  for (;;) {
    const { rows } = await pool.query(
      `SELECT (SELECT seq FROM commit_marks WHERE conn = $1) AS seq,
              CASE WHEN $2::xid8 < pg_snapshot_xmax(pg_current_snapshot()) THEN pg_xact_status($2::xid8) END AS status`,
      [lost.conn, lost.xid],
    );
    // An id past the server's next one (given out before a crash, never on its disk) is no transaction in progress.
    if (rows[0].status !== 'in progress') return Number(rows[0].seq) === lost.seq;
    pools.get(pool)?.hold?.();
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/**
 * Removes the marks of connections that have written nothing for a day: each
 * connection keeps one row, and a worker's connections come and go.
 */
export async function pruneCommitMarks(pool: pg.Pool): Promise<void> {
  await pool.query('DELETE FROM commit_marks WHERE at < herbdl_now() - 86400000');
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
  }, { marked: false });
}
