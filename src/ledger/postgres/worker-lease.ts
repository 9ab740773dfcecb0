/**
 * A worker's place on a shared ledger: its row in `workers`, and the lease
 * its heartbeat keeps alive. Everything it claims holds exactly as long as
 * that lease, so a heartbeat is one UPDATE of one row, whatever it holds.
 *
 * A clean stop (the run ends, Ctrl-C, SIGTERM) hands every claim back at
 * once. kill -9 leaves them to expire after --lease. A worker that cannot
 * renew (the server is unreachable) stops publishing before its lease could
 * have run out: check() throws with a margin of two heartbeats.
 */
import { hostname } from 'node:os';
import type pg from 'pg';
import { LedgerError } from '../../errors.js';
import type { RunLock, WorkerId } from '../ledger.js';

/** Heartbeats: often enough that what one worker learns (a 429, a breaker) reaches the others within 5 s. */
const MAX_HEARTBEAT_MS = 5_000;
const RATE_WINDOW_MS = 60_000;

export class WorkerLease implements RunLock {
  readonly heartbeatMs: number;
  private timer: NodeJS.Timeout | undefined;
  private lastRenewed: number;
  private lost = false;
  private released = false;
  /** Images recorded done, and samples of it over the last minute, for the leaderboard's images/s. */
  images = 0;
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
    const holder: WorkerId = { pid: process.pid, machine: hostname(), since: Date.now() };
    // Maintenance, explicit and cheap: rows of workers gone for a week that hold nothing.
    await pool.query('DELETE FROM workers w WHERE lease_until < herbdl_now() - 7 * 86400000 AND NOT EXISTS (SELECT 1 FROM ids WHERE ids.worker_id = w.worker_id)');
    const row = await pool.query(
      'INSERT INTO workers (machine, pid, since, heartbeat_at, lease_until) VALUES ($1, $2, $3, herbdl_now(), herbdl_now() + $4) RETURNING worker_id',
      [holder.machine, holder.pid, holder.since, leaseMs],
    );
    const lease = new WorkerLease(pool, row.rows[0].worker_id as number, holder, leaseMs);
    lease.timer = setInterval(() => void lease.beat(), lease.heartbeatMs);
    lease.timer.unref();
    return lease;
  }

  check(): void {
    if (this.lost || Date.now() - this.lastRenewed > this.leaseMs - 2 * this.heartbeatMs) {
      this.lost = true;
      throw new LedgerError(
        `worker ${this.holder.machine}:${this.holder.pid} could not renew its lease for ${Math.round((Date.now() - this.lastRenewed) / 1000)} s; its claims may go to other workers, so it stops publishing`,
        'lease_lost',
      );
    }
  }

  private rate(now: number): number {
    this.samples.push([now, this.images]);
    while (this.samples.length > 1 && (this.samples[0] as [number, number])[0] < now - RATE_WINDOW_MS) this.samples.shift();
    const [t0, n0] = this.samples[0] as [number, number];
    return now > t0 ? ((this.images - n0) * 1000) / (now - t0) : 0;
  }

  private async beat(): Promise<void> {
    if (this.released || this.lost) return;
    try {
      const renewed = await this.pool.query(
        'UPDATE workers SET heartbeat_at = herbdl_now(), lease_until = herbdl_now() + $2, images_per_second = $3 WHERE worker_id = $1 AND lease_until > herbdl_now() RETURNING 1',
        [this.workerId, this.leaseMs, this.rate(Date.now())],
      );
      if (renewed.rowCount === 0) this.lost = true;
      else this.lastRenewed = Date.now();
    } catch {
      // The server is away: check() stops publishing before the lease could have run out.
    }
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    clearInterval(this.timer);
    // Hand every claim back at once: the others take them up without waiting for the lease.
    await this.pool.query('UPDATE ids SET worker_id = NULL, set_aside = false WHERE worker_id = $1', [this.workerId]);
    await this.pool.query('UPDATE host_slots SET worker_id = NULL WHERE worker_id = $1', [this.workerId]);
    await this.pool.query('DELETE FROM host_wants WHERE worker_id = $1', [this.workerId]);
    await this.pool.query('UPDATE workers SET stopped_at = herbdl_now(), lease_until = herbdl_now() WHERE worker_id = $1', [this.workerId]);
  }
}
