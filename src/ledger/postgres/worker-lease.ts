/**
 * A worker's place on a shared ledger: its row in `workers`, and the lease
 * its heartbeat keeps alive. Everything it claims holds exactly as long as
 * that lease, so a heartbeat is one UPDATE of one row, whatever it holds.
 *
 * A clean stop (the run ends, Ctrl-C, SIGTERM) hands every claim back at
 * once. kill -9 leaves them to expire after --lease. A worker that cannot
 * renew (the server is unreachable) stops publishing before its lease could
 * have run out: check() throws with a margin of two heartbeats, and ends
 * every connection, so no statement keeps it waiting on a server that does
 * not answer. Until then, its statements wait for a server that went away
 * (connect.ts: rideOut).
 *
 * The heartbeat has a connection of its own: queued behind the worker's own
 * statements (a pool full of transactions waiting on other workers'
 * counters), a busy worker would read as a dead one and stop.
 */
import type pg from 'pg';
import { isConnectionLoss, LedgerError } from '../../errors.js';
import { thisProcess } from '../../file-lock.js';
import { abandon, pruneCommitMarks, rideOut, serverAway, transaction } from './connect.js';
import { HELD_BY, HELD_ROWS, LET_GO } from './live.js';
import type { RunLock, WorkerId } from '../ledger.js';

/** Heartbeats: often enough that what one worker learns (a 429, a breaker) reaches the others within 5 s. */
const MAX_HEARTBEAT_MS = 5_000;
const RATE_WINDOW_MS = 60_000;
/** How long a stopping worker clears its id from its claims, and how many at a time (see tidyClaims). */
const TIDY_MS = 5_000;
const TIDY_CHUNK = 65_536;

export class WorkerLease implements RunLock {
  readonly heartbeatMs: number;
  private timer: NodeJS.Timeout | undefined;
  private lastRenewed: number;
  private lost = false;
  private released = false;
  /** The heartbeat's own connection, taken at join and again after one is lost. */
  private beatClient: pg.PoolClient | undefined;
  private beating = false;
  /** Why the last heartbeat failed, if the server went away: said with the lease's loss. */
  private away: Error | undefined;
  /** Images recorded done, and samples of it over the last minute, for the leaderboard's images/s. */
  images = 0;
  /** gbifIDs it has parked behind open breakers, for the leaderboard (downloads.ts counts them). */
  setAside = 0;
  private samples: [number, number][] = [];

  private constructor(
    private readonly pool: pg.Pool,
    readonly workerId: number,
    readonly holder: WorkerId,
    private readonly leaseMs: number,
  ) {
    this.heartbeatMs = Math.min(MAX_HEARTBEAT_MS, Math.floor(leaseMs / 4));
    this.lastRenewed = Date.now();
  }

  static async join(pool: pg.Pool, leaseMs: number): Promise<WorkerLease> {
    const holder: WorkerId = thisProcess();
    // Maintenance, explicit and cheap: rows of workers gone for a week that stopped (whatever ids their tidying
    // left on claims: free either way) or hold nothing. Whether one holds anything is a probe of its indexes for
    // that worker: NOT EXISTS was planned as an anti-join, a scan of the whole of ids at every worker's start.
    await pool.query(
      `DELETE FROM workers w WHERE lease_until < herbdl_now() - 7 * 86400000
         AND (stopped_at IS NOT NULL OR (SELECT 1 FROM (${HELD_ROWS('w.worker_id')}) held LIMIT 1) IS NULL)`,
    );
    // And the commit marks of connections that have written nothing for a day (connect.ts): one row each.
    await pruneCommitMarks(pool);
    const row = await pool.query(
      'INSERT INTO workers (machine, pid, since, heartbeat_at, lease_until) VALUES ($1, $2, $3, herbdl_now(), herbdl_now() + $4) RETURNING worker_id',
      [holder.machine, holder.pid, holder.since, leaseMs],
    );
    const lease = new WorkerLease(pool, row.rows[0].worker_id as number, holder, leaseMs);
    lease.beatClient = await pool.connect();
    lease.timer = setInterval(() => void lease.beat(), lease.heartbeatMs);
    lease.timer.unref();
    // From here on, a server that goes away (a restart, a failover) is waited for while the lease may still hold.
    rideOut(pool, () => lease.check());
    return lease;
  }

  check(): void {
    if (this.lost || Date.now() - this.lastRenewed > this.leaseMs - 2 * this.heartbeatMs) {
      if (!this.lost) abandon(this.pool);
      this.lost = true;
      const stop = new LedgerError(
        `worker ${this.holder.machine}:${this.holder.pid} could not renew its lease for ${Math.round((Date.now() - this.lastRenewed) / 1000)} s; its claims may go to other workers, so it stops publishing`,
        'lease_lost',
      );
      // Said as a statement waiting for the server says it (connect.ts), whether the run's hold check or a statement noticed first.
      throw this.away ? serverAway(this.pool, this.away, stop) : stop;
    }
  }

  private rate(now: number): number {
    this.samples.push([now, this.images]);
    while (this.samples.length > 1 && (this.samples[0] as [number, number])[0] < now - RATE_WINDOW_MS) this.samples.shift();
    const [t0, n0] = this.samples[0] as [number, number];
    return now > t0 ? ((this.images - n0) * 1000) / (now - t0) : 0;
  }

  private async beat(): Promise<void> {
    // One heartbeat at a time: a server that answers late gets no queue of them.
    if (this.released || this.lost || this.beating) return;
    this.beating = true;
    // The lease runs from when the server renewed it, which is after this: counting from here errs safe.
    const sent = Date.now();
    try {
      this.beatClient ??= await this.pool.connect();
      const renewed = await this.beatClient.query(
        'UPDATE workers SET heartbeat_at = herbdl_now(), lease_until = herbdl_now() + $2, images_per_second = $3, set_aside = $4 WHERE worker_id = $1 AND lease_until > herbdl_now() RETURNING 1',
        [this.workerId, this.leaseMs, this.rate(sent), this.setAside],
      );
      if (renewed.rowCount === 0) this.lost = true;
      else this.lastRenewed = sent;
      this.away = undefined;
    } catch (err) {
      if (isConnectionLoss(err)) this.away = err as Error;
      // The server is away: check() stops publishing before the lease could have run out. The next beat connects again.
      this.dropBeatClient(true);
    } finally {
      this.beating = false;
      // Released while this beat was out: its connection goes back now, not under the query.
      if (this.released) this.dropBeatClient();
    }
  }

  /** Gives the heartbeat's connection back to the pool (`broken`: closed, not reused). */
  private dropBeatClient(broken = false): void {
    this.beatClient?.release(broken);
    this.beatClient = undefined;
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    clearInterval(this.timer);
    if (!this.beating) this.dropBeatClient();
    // A lost lease's claims are already free to the others (and its server may not answer).
    if (this.lost) return rideOut(this.pool, undefined);
    // Hand every claim back at once: with the lease ended, one row, they are free to the others (live.ts: FREE),
    // however many it holds, whatever becomes of the tidying that follows.
    await this.pool.query('UPDATE workers SET stopped_at = herbdl_now(), lease_until = herbdl_now() WHERE worker_id = $1', [this.workerId]);
    await this.pool.query('UPDATE host_slots SET worker_id = NULL WHERE worker_id = $1', [this.workerId]);
    await this.pool.query('DELETE FROM host_wants WHERE worker_id = $1', [this.workerId]);
    await this.tidyClaims();
    rideOut(this.pool, undefined);
  }

  /**
   * Clears this stopped worker's id from its claims, a chunk at a time, for
   * TIDY_MS at most. When it held every gbifID it set aside behind open
   * breakers (46 s for 2M in one statement), the process waited on it before
   * it could end, and a batch scheduler's allocation with it; those are parked
   * now, held by no worker, and it holds a window's worth. What is left is
   * already free to every worker (its lease has ended): a claim in flight is
   * overwritten by the next claim of it; the leaderboard counts no claims of
   * a stopped worker.
   */
  private async tidyClaims(): Promise<void> {
    const end = Date.now() + TIDY_MS;
    for (let left = TIDY_MS; left > 0; left = end - Date.now()) {
      try {
        const tidied = await transaction(this.pool, async (db) => {
          await db.query(`SET LOCAL statement_timeout = ${Math.max(1, Math.ceil(left))}`);
          // Only rows still this worker's: one another worker has claimed since its lease ended is left as it is.
          const r = await db.query(
            `UPDATE ids SET ${LET_GO} WHERE gbif_id = ANY(ARRAY(${HELD_ROWS('$1')} LIMIT ${TIDY_CHUNK})) AND ${HELD_BY('worker_id', '$1')}`,
            [this.workerId],
          );
          return r.rowCount ?? 0;
        });
        if (tidied < TIDY_CHUNK) return;
      } catch (err) {
        if ((err as { code?: string }).code === '57014') return; // query_canceled: out of time
        throw err;
      }
    }
  }
}
