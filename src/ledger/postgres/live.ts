/** Whether a worker's lease holds, and whose a claim is, as SQL: the conditions claims, host slots and fetch leases share. */

/**
 * True when the worker named by `column` holds a live lease (false for NULL). The live workers are read once
 * per statement (an uncorrelated subquery, which the server runs once), not once per row: herbdl_now() is
 * volatile, so the correlated EXISTS this was evaluated it, and probed workers, for every row a statement
 * went over. A worker waiting on another asks it of every pending gbifID: with 16.2M set aside by a live
 * worker, asking whether any was pending elsewhere took 60 s as EXISTS, 2.5 s now.
 */
export const LIVE = (column: string) =>
  `COALESCE(${column} = ANY(ARRAY(SELECT w.worker_id FROM workers w WHERE w.lease_until > herbdl_now())), false)`;

/** A gbifID that no live worker holds: the condition every claim adds. */
export const FREE = `(ids.worker_id IS NULL OR NOT ${LIVE('ids.worker_id')})`;

/**
 * The claim in `column` (an ids.worker_id) is `worker`'s, for statements that find their rows by gbifID: as
 * `column = worker` (never NULL), but written so that ids_by_worker cannot serve it, and the rows are found
 * by their gbifIDs, a probe each. worker_id's statistics are never current (a bulk load analyzes it all
 * NULL; claims come and go by the million), so the planner, told the worker holds next to nothing, read the
 * few gbifIDs named out of ids_by_worker, every claim the worker held, in each statement. When a worker
 * held every gbifID it set aside until it ended, 4.8M index entries were read to set 20,000 aside, and with a
 * million held each batch of set-asides took 0.9 s. Any strict comparison (`column + 0 = worker`, say)
 * still lets the planner prove the partial index's `worker_id IS NOT NULL` and scan the whole of it; IS NOT
 * DISTINCT FROM is not strict.
 */
export const HELD_BY = (column: string, worker: string) => `${column} IS NOT DISTINCT FROM ${worker}`;

/** What a statement that lets a claim go sets. */
export const LET_GO = 'worker_id = NULL';

/**
 * The gbifIDs `worker` holds, through ids_by_worker: a window's worth while it runs (those it sets aside are
 * parked, held by no worker).
 */
export const HELD_ROWS = (worker: string) => `SELECT gbif_id FROM ids WHERE ids.worker_id = ${worker}`;

/**
 * Hosts with gbifIDs parked behind them, in order of id: read from ids_blocked a host at a time (an index skip
 * scan written as a recursive query, one probe per host), never row by row, so it costs the same with millions
 * parked. The condition is ids_blocked's, repeated for that index to serve it.
 */
export const BLOCKED_HOSTS = `WITH RECURSIVE blocked(id) AS (
    (SELECT blocked_host FROM ids WHERE blocked_host IS NOT NULL AND state IN (0, 2) ORDER BY blocked_host, gbif_id LIMIT 1)
    UNION ALL
    SELECT (SELECT blocked_host FROM ids WHERE blocked_host IS NOT NULL AND state IN (0, 2) AND blocked_host > b.id ORDER BY blocked_host, gbif_id LIMIT 1)
    FROM blocked b WHERE b.id IS NOT NULL)
  SELECT h.host, h.breaker_open_until FROM blocked b JOIN hosts h ON h.host_id = b.id`;
