/**
 * The ledger on a PostgreSQL server, shared by workers on many machines.
 * Same interface and same answers as the SQLite file; what differs is who
 * may write: any number of runs at once (each a leased worker), ingests one
 * at a time.
 */
import { plan } from './rechecks.js';
import { FRESHNESS } from '../freshness.js';
import type pg from 'pg';
import type { ExcludeTally, UnexcludeTally } from '../exclusions.js';
import type { DoneFile, DownloadLedger, ExportedImage, HostErrorCount, IngestWriter, ItemState, LabelRow, LabelSummary, LabelWriter, Ledger, LedgerStatus, RunLock, WorkerStatus, HostRate, PlanRow, Tier } from '../ledger.js';
import { labelRows, labelSummary, PostgresLabelWriter } from './labels.js';
import { labelsOf } from '../labels.js';
import type { OpenOptions } from '../sqlite/sqlite-ledger.js';
import { derivedCounts, freshnessOf, GONE_IDS_SQL, doneFileSql, exportColumns, exportedImage, HOST_COLUMNS, hostCounts, idCounts, imageCounts, IMAGES_REMOVED, STATE, verifiedOf } from '../rows.js';
import { LAST_VERIFY } from '../upkeep.js';
import { bulkLoadPending, completeBulkLoad, ensureRunIndexes } from './bulk-load.js';
import { createPool, migrate } from './connect.js';
import { describeConnectFailure, redact } from './server-url.js';
import { PostgresDownloads } from './downloads.js';
import { applyExclusions, excludeIds, unexcludeIds } from './exclusions.js';
import { PostgresIngestWriter } from './ingest-writer.js';
import { WorkerLease } from './worker-lease.js';
import { LedgerError } from '../../errors.js';

/** gbifIDs per page of an export: pages walk the ids key, so memory stays flat. */
const EXPORT_PAGE = 5000;

export async function openPostgresLedger(url: string, options: OpenOptions): Promise<Ledger> {
  const pool = createPool(url);
  try {
    await migrate(pool, url, options.create);
  } catch (err) {
    await pool.end().catch(() => {});
    if (err instanceof LedgerError) throw err;
    throw describeConnectFailure(url, err);
  }
  return new PostgresLedger(pool, redact(url));
}

class PostgresLedger implements Ledger {
  constructor(
    private readonly pool: pg.Pool,
    readonly location: string,
  ) {}

  async lockForRun(options: { leaseMs: number }): Promise<RunLock> {
    return WorkerLease.join(this.pool, options.leaseMs);
  }

  /** Finishes a bulk load that died before it built its indexes (one ingest at a time does this: it holds the ingest lock). */
  private async completeInterruptedLoad(): Promise<void> {
    if (!(await bulkLoadPending(this.pool))) return;
    const writer = await PostgresIngestWriter.open(this.pool);
    await writer.finishInterrupted(completeBulkLoad);
  }

  async openIngest(options: { readonly snapshot?: boolean } = {}): Promise<IngestWriter> {
    await this.completeInterruptedLoad();
    await applyExclusions(this.pool);
    return PostgresIngestWriter.open(this.pool, options);
  }

  async openDownloads(lock: RunLock): Promise<DownloadLedger> {
    if (!(lock instanceof WorkerLease)) throw new Error('openDownloads: the lock is not from a PostgreSQL ledger');
    await this.completeInterruptedLoad();
    await applyExclusions(this.pool);
    await ensureRunIndexes(this.pool);
    return new PostgresDownloads(this.pool, lock);
  }

  async *exportImages(state: ItemState | 'all'): AsyncIterableIterator<ExportedImage> {
    const where = state === 'all' ? '' : `AND i.state = ${STATE[state]}`;
    let after = -1;
    for (;;) {
      const range = await this.pool.query('SELECT max(gbif_id) AS last FROM (SELECT gbif_id FROM ids WHERE gbif_id > $1 ORDER BY gbif_id LIMIT $2) s', [after, EXPORT_PAGE]);
      const last = range.rows[0].last as number | null;
      if (last === null) return;
      const { select, from, order } = exportColumns(STATE.done);
      const rows = await this.pool.query({
        text: `SELECT ${select} FROM ${from} WHERE i.gbif_id > $1 AND i.gbif_id <= $2 ${where} ORDER BY ${order}`,
        values: [after, last],
        rowMode: 'array',
      });
      for (const r of rows.rows as unknown[][]) yield exportedImage(r);
      after = last;
    }
  }

  async doneFile(gbifId: number, fileIndex: number): Promise<DoneFile> {
    const [row, publishing] = await Promise.all([
      this.pool.query({ text: doneFileSql(STATE.done, '$1', '$2'), values: [gbifId, fileIndex], rowMode: 'array' }),
      this.pool.query('SELECT 1 FROM publishing WHERE gbif_id = $1', [gbifId]),
    ]);
    const found = row.rows[0] as unknown[] | undefined;
    return { image: found ? exportedImage(found) : undefined, publishing: publishing.rows.length > 0 };
  }

  plan(tiers: readonly Tier[], now: number): Promise<{ rows: PlanRow[]; rates: HostRate[] }> {
    return plan(this.pool, tiers, now);
  }

  async openLabels(fields: readonly string[]): Promise<LabelWriter> {
    await this.completeInterruptedLoad();
    return PostgresLabelWriter.open(this.pool, this.location, fields);
  }

  labelSummary(): Promise<LabelSummary | undefined> {
    return labelSummary(this.pool);
  }

  labels(): AsyncIterable<LabelRow> {
    return labelRows(this.pool);
  }

  async *derivedIds(width: number): AsyncIterableIterator<number> {
    for (let after = -1; ; ) {
      const rows = await this.pool.query('SELECT gbif_id FROM derivatives WHERE width = $1 AND gbif_id > $2 ORDER BY gbif_id LIMIT $3', [width, after, EXPORT_PAGE]);
      if (rows.rows.length === 0) return;
      for (const r of rows.rows) yield r.gbif_id as number;
      after = rows.rows[rows.rows.length - 1].gbif_id as number;
    }
  }

  async exclude(gbifIds: Float64Array): Promise<ExcludeTally> {
    await this.completeInterruptedLoad();
    return excludeIds(this.pool, gbifIds);
  }

  async unexclude(gbifIds: Float64Array): Promise<UnexcludeTally> {
    await this.completeInterruptedLoad();
    return unexcludeIds(this.pool, gbifIds);
  }

  async isEmpty(): Promise<boolean> {
    const row = await this.pool.query('SELECT NOT EXISTS (SELECT 1 FROM images) AS empty');
    return row.rows[0].empty as boolean;
  }

  async status(options: { hosts: number }): Promise<LedgerStatus> {
    // As in SQLite: counters kept beside the rows, a few thousand host rows at most; one snapshot for all of them.
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      const totals = new Map((await client.query('SELECT name, value FROM totals')).rows.map((r) => [r.name as string, r.value as number]));
      const ids = idCounts(totals);
      const images = imageCounts((await client.query('SELECT coalesce(sum(images), 0)::bigint AS total, coalesce(sum(pending), 0)::bigint AS pending, coalesce(sum(done), 0)::bigint AS done, coalesce(sum(failed), 0)::bigint AS failed FROM hosts')).rows[0], totals.get(IMAGES_REMOVED));
      const hosts = (await client.query(`SELECT ${HOST_COLUMNS} FROM hosts WHERE images > 0 ORDER BY images DESC, host LIMIT $1`, [options.hosts])).rows.map(hostCounts);
      const now = Date.now();
      const blockedHosts = (await client.query(`SELECT ${HOST_COLUMNS} FROM hosts WHERE breaker_open_until > $1 AND pending > 0 ORDER BY pending DESC, host LIMIT $2`, [now, Math.max(options.hosts, 10)])).rows.map(hostCounts);
      const blocked = (await client.query('SELECT count(*)::int AS hosts, coalesce(sum(pending), 0)::bigint AS pending FROM hosts WHERE breaker_open_until > $1 AND pending > 0', [now])).rows[0] as LedgerStatus['blocked'];
      const errorsByHost = (await client.query('SELECT h.host, e.code, e.images FROM error_counts e JOIN hosts h USING (host_id) WHERE e.images > 0 ORDER BY e.images DESC, h.host LIMIT $1', [Math.max(options.hosts, 10)])).rows as HostErrorCount[];
      const errorRows = (await client.query('SELECT code, sum(images)::bigint AS n FROM error_counts GROUP BY code HAVING sum(images) > 0 ORDER BY 2 DESC, 1')).rows;
      const workers = await this.workers(client);
      const complete = !(await bulkLoadPending(client));
      await client.query('COMMIT');
      return { complete, ids, images, hosts, errors: Object.fromEntries(errorRows.map((r) => [r.code, r.n])), errorsByHost, blockedHosts, blocked, workers, derivatives: derivedCounts(totals),
        freshness: freshnessOf(
          totals,
          (await client.query('SELECT value FROM herbdl_meta WHERE name = $1', [FRESHNESS])).rows[0]?.value as string | undefined,
          Number(totals.get('images_gone') ?? 0) > 0 ? (await client.query(GONE_IDS_SQL)).rows.map((r) => r.gbif_id as number) : [],
        ),
        ...verifiedOf((await client.query('SELECT value FROM herbdl_meta WHERE name = $1', [LAST_VERIFY])).rows[0]?.value as string | undefined),
        ...labelsOf(await labelSummary(client)) };
    } finally {
      client.release();
    }
  }

  /**
   * The leaderboard: live workers first, then the most recent others. A stopped worker holds nothing, whatever
   * ids its tidying left (worker-lease.ts). What each holds to work on is counted (ids_by_worker, a window's
   * worth); what it parked behind open breakers is its tally, as done and failed are, said at its last heartbeat.
   */
  private async workers(client: pg.PoolClient): Promise<WorkerStatus[]> {
    const rows = await client.query(
      `SELECT w.worker_id, w.machine, w.pid, w.since, w.heartbeat_at, w.lease_until <= herbdl_now() AS expired, w.stopped_at IS NOT NULL AS stopped,
         w.done, w.failed, w.images_per_second,
         CASE WHEN w.stopped_at IS NULL THEN (SELECT count(*) FROM ids WHERE ids.worker_id = w.worker_id) ELSE 0 END::bigint AS claimed,
         w.set_aside
       FROM workers w ORDER BY (w.lease_until > herbdl_now()) DESC, w.heartbeat_at DESC LIMIT 50`,
    );
    return rows.rows.map((r) => ({
      worker: `${r.machine}:${r.pid}`,
      machine: r.machine,
      pid: r.pid,
      since: r.since,
      heartbeat: r.heartbeat_at,
      expired: r.expired && !r.stopped,
      stopped: r.stopped,
      claimed: r.claimed,
      setAside: r.set_aside,
      done: r.done,
      failed: r.failed,
      imagesPerSecond: r.stopped || r.expired ? 0 : Math.round(r.images_per_second * 10) / 10,
    }));
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}
