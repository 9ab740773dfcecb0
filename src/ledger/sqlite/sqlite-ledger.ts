/**
 * The ledger in one local SQLite file (WAL; keep it off network filesystems,
 * where WAL is unsafe). One process writes at a time; `status` may read while
 * `run` or `ingest` writes.
 */
import { SqliteRechecks } from './rechecks.js';
import { FRESHNESS } from '../freshness.js';
import { accessSync, constants, existsSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { LedgerError } from '../../errors.js';
import type { ExcludeTally, UnexcludeTally } from '../exclusions.js';
import type { DoneFile, DownloadLedger, ExportedImage, HostCounts, HostErrorCount, IngestWriter, ItemState, LabelRow, LabelSummary, LabelWriter, Ledger, LedgerStatus, RunLock, StateCounts, HostRate, PlanRow, Tier } from '../ledger.js';
import { labelRows, labelSummary, SqliteLabelWriter } from './labels.js';
import { labelsOf } from '../labels.js';
import { doneFileSql, exportColumns, exportedImage, READ_PAGE, HOST_COLUMNS, hostCounts, idCounts, derivedCounts, freshnessOf, GONE_IDS_SQL, imageCounts, IMAGES_REMOVED, verifiedOf } from '../rows.js';
import { LAST_VERIFY } from '../upkeep.js';
import { bulkLoadPending, completeBulkLoad, sharedJournal } from './bulk-load.js';
import { SqliteDownloads } from './downloads.js';
import { warnIfNetworkFilesystem } from './filesystem.js';
import { applyExclusions, SqliteExclusions, unexcludeIds } from './exclusions.js';
import { SqliteIngestWriter } from './ingest-writer.js';
import { lockForRun } from './run-lock.js';
import { CREATE_URL_INDEX, MIGRATIONS, SCHEMA_VERSION, STATE } from './schema.js';
import { writeTransaction } from './write-transaction.js';

export interface OpenOptions {
  /** Create the file if it does not exist (ingest); otherwise a missing ledger is an error. */
  readonly create: boolean;
  /**
   * SQLite's page cache, in MiB (32 unless said): a command that reads the
   * ledger in gbifID order (adopt) is served as well by a few MiB. A shared
   * PostgreSQL ledger caches on its server and ignores this.
   */
  readonly pageCacheMb?: number;
}

function migrate(db: Database.Database, location: string): void {
  const version = db.pragma('user_version', { simple: true }) as number;
  if (version > SCHEMA_VERSION) {
    throw new LedgerError(`${location}: ledger schema ${version} is newer than this herbdl understands (${SCHEMA_VERSION}); upgrade herbdl`, 'ledger_too_new');
  }
  if (version === 0) {
    const tables = db.prepare("SELECT count(*) FROM sqlite_master WHERE type = 'table'").pluck().get() as number;
    if (tables > 0) throw new LedgerError(`${location}: is a SQLite database but not a herbdl ledger`, 'not_a_ledger');
  }
  for (let v = version; v < SCHEMA_VERSION; v++) {
    writeTransaction(db, () => {
      // Another command opening the ledger at the same moment may have applied it while this one waited for the lock.
      if ((db.pragma('user_version', { simple: true }) as number) !== v) return;
      db.exec(MIGRATIONS[v] as string);
      db.pragma(`user_version = ${v + 1}`);
    });
  }
}

function writable(folder: string): boolean {
  try {
    accessSync(folder, constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

function describeOpenFailure(location: string, err: unknown): LedgerError {
  const e = err as { code?: string; message: string };
  if (e.code === 'SQLITE_NOTADB') return new LedgerError(`${location}: not a SQLite database`, 'not_a_ledger', { cause: err });
  if (e.code === 'SQLITE_BUSY') return new LedgerError(`${location}: ledger is busy (another herbdl is writing it)`, 'ledger_busy', { cause: err });
  if (e.code === 'SQLITE_READONLY_DIRECTORY' || (e.code === 'SQLITE_CANTOPEN' && !writable(dirname(resolve(location))))) {
    // A lab's archived ledger, or a colleague's: WAL needs its -shm file beside the ledger even for a read.
    return new LedgerError(
      `${location}: cannot open ledger: its folder cannot be written here (read-only, or another user's), and SQLite keeps its -wal and -shm files beside a ledger even to read it; copy the ledger to a folder you can write, or run as a user who can write there`,
      'ledger_open',
      { cause: err },
    );
  }
  return new LedgerError(`${location}: cannot open ledger (${e.message})`, 'ledger_open', { cause: err });
}

export function openSqliteLedger(path: string, options: OpenOptions): Ledger {
  const location = resolve(path);
  if (!existsSync(location)) {
    if (!options.create) throw new LedgerError(`${path}: no ledger here; run 'herbdl ingest <multimedia.txt> --db ${path}' first`, 'ledger_missing');
    if (!existsSync(dirname(location))) throw new LedgerError(`${path}: folder ${dirname(location)} does not exist`, 'ledger_open');
  } else if (statSync(location).isDirectory()) {
    throw new LedgerError(`${path}: is a directory, not a ledger file`, 'ledger_open');
  }
  let db: Database.Database;
  try {
    db = new Database(location, { fileMustExist: !options.create });
    db.pragma('busy_timeout = 10000');
    db.pragma('journal_mode = WAL');
    // NORMAL in WAL: a crash of this process never loses a commit; only a power
    // cut may lose the last few, which a re-run redoes (ingest is idempotent).
    db.pragma('synchronous = NORMAL');
    // 32 MiB of page cache: ingest's peak RSS must stay under 200 MB whatever the file.
    db.pragma(`cache_size = -${Math.round((options.pageCacheMb ?? 32) * 1024)}`);
    migrate(db, path);
  } catch (err) {
    if (err instanceof LedgerError) throw err;
    throw describeOpenFailure(path, err);
  }
  warnIfNetworkFilesystem(path, dirname(location));
  return new SqliteLedger(db, location);
}

class SqliteLedger implements Ledger {
  private exclusions: SqliteExclusions | undefined;

  constructor(
    private readonly db: Database.Database,
    readonly location: string,
  ) {}

  async lockForRun(): Promise<RunLock> {
    return lockForRun(this.db, this.location);
  }

  async openIngest(options: { readonly snapshot?: boolean } = {}): Promise<IngestWriter> {
    this.settle();
    return new SqliteIngestWriter(this.db, options);
  }

  async openDownloads(): Promise<DownloadLedger> {
    this.settle();
    this.db.exec(CREATE_URL_INDEX);
    return new SqliteDownloads(this.db);
  }

  async *exportImages(state: ItemState | 'all'): AsyncIterableIterator<ExportedImage> {
    const where = state === 'all' ? '' : `AND i.state = ${STATE[state]}`;
    const { select, from, order } = exportColumns(STATE.done);
    const range = this.db.prepare('SELECT max(gbif_id) FROM (SELECT gbif_id FROM ids WHERE gbif_id > ? ORDER BY gbif_id LIMIT ?)').pluck();
    const page = this.db.prepare(`SELECT ${select} FROM ${from} WHERE i.gbif_id > ? AND i.gbif_id <= ? ${where} ORDER BY ${order}`).raw();
    // A page of gbifIDs at a time, never one read open for the whole export (READ_PAGE).
    for (let after = -1; ; ) {
      const last = range.get(after, READ_PAGE) as number | null;
      if (last === null) return;
      for (const r of page.all(after, last) as unknown[][]) yield exportedImage(r);
      after = last;
    }
  }

  async doneFile(gbifId: number, fileIndex: number): Promise<DoneFile> {
    // Long reads go a page at a time (READ_PAGE), so no read is open here between two pages: this one sees the latest commit.
    const row = this.db.prepare(doneFileSql(STATE.done, '?', '?')).raw().get(gbifId, fileIndex) as unknown[] | undefined;
    const publishing = this.db.prepare('SELECT 1 FROM publishing WHERE gbif_id = ?').get(gbifId) !== undefined;
    return { image: row ? exportedImage(row) : undefined, publishing };
  }

  async openLabels(fields: readonly string[]): Promise<LabelWriter> {
    this.settle();
    return SqliteLabelWriter.open(this.db, this.location, fields);
  }

  async labelSummary(): Promise<LabelSummary | undefined> {
    return labelSummary(this.db);
  }

  async *labels(): AsyncIterableIterator<LabelRow> {
    yield* labelRows(this.db);
  }

  async plan(tiers: readonly Tier[], now: number): Promise<{ rows: PlanRow[]; rates: HostRate[] }> {
    return new SqliteRechecks(this.db).plan(tiers, now);
  }

  async *derivedIds(width: number): AsyncIterableIterator<number> {
    // The key is (gbif_id, width): walked in its order, one width's rows picked out, a page at a time (READ_PAGE).
    const page = this.db.prepare('SELECT gbif_id FROM derivatives WHERE gbif_id > ? AND width = ? ORDER BY gbif_id LIMIT ?').pluck();
    for (let after = -1; ; ) {
      const ids = page.all(after, width, READ_PAGE) as number[];
      yield* ids;
      if (ids.length < READ_PAGE) return;
      after = ids[ids.length - 1] as number;
    }
  }

  async exclude(gbifIds: Float64Array): Promise<ExcludeTally> {
    this.settle();
    this.exclusions ??= new SqliteExclusions(this.db);
    return this.exclusions.add(gbifIds);
  }

  async unexclude(gbifIds: Float64Array): Promise<UnexcludeTally> {
    this.settle();
    return unexcludeIds(this.db, gbifIds);
  }

  /**
   * Before anything changes the ledger's rows: a bulk load that died left its
   * indexes and ids table unbuilt (nothing to exclude from, nothing to add
   * to), and an ingest that died may have left listed IDs unexcluded.
   */
  private settle(): void {
    if (bulkLoadPending(this.db)) completeBulkLoad(this.db);
    applyExclusions(this.db);
  }

  async isEmpty(): Promise<boolean> {
    return this.db.prepare('SELECT NOT EXISTS (SELECT 1 FROM images)').pluck().get() === 1;
  }

  async status(options: { hosts: number }): Promise<LedgerStatus> {
    // Every figure comes from counters kept beside the rows: a few thousand
    // host rows at most, whatever the number of gbifIDs.
    const read = this.db.transaction(() => {
      const totals = new Map(this.db.prepare('SELECT name, value FROM totals').raw().all() as [string, number][]);
      const ids = idCounts(totals);
      const images = imageCounts(
        this.db
          .prepare('SELECT coalesce(sum(images), 0) AS total, coalesce(sum(pending), 0) AS pending, coalesce(sum(done), 0) AS done, coalesce(sum(failed), 0) AS failed FROM hosts')
          .get() as StateCounts,
        totals.get(IMAGES_REMOVED),
      );
      const hosts = (this.db
        .prepare(`SELECT ${HOST_COLUMNS} FROM hosts WHERE images > 0 ORDER BY images DESC, host LIMIT ?`)
        .all(options.hosts) as HostCounts[]).map(hostCounts);
      const now = Date.now();
      const blockedHosts = (this.db
        .prepare(`SELECT ${HOST_COLUMNS} FROM hosts WHERE breaker_open_until > ? AND pending > 0 ORDER BY pending DESC, host LIMIT ?`)
        .all(now, Math.max(options.hosts, 10)) as HostCounts[]).map(hostCounts);
      const blocked = this.db.prepare('SELECT count(*) AS hosts, coalesce(sum(pending), 0) AS pending FROM hosts WHERE breaker_open_until > ? AND pending > 0').get(now) as LedgerStatus['blocked'];
      const errorsByHost = this.db
        .prepare('SELECT h.host, e.code, e.images FROM error_counts e JOIN hosts h USING (host_id) WHERE e.images > 0 ORDER BY e.images DESC, h.host LIMIT ?')
        .all(Math.max(options.hosts, 10)) as HostErrorCount[];
      const errorRows = this.db.prepare('SELECT code, sum(images) FROM error_counts GROUP BY code HAVING sum(images) > 0 ORDER BY 2 DESC').raw().all() as [string, number][];
      return { complete: !bulkLoadPending(this.db), ids, images, hosts, errors: Object.fromEntries(errorRows), errorsByHost, blockedHosts, blocked, workers: [], derivatives: derivedCounts(totals),
        freshness: freshnessOf(
          totals,
          this.db.prepare('SELECT value FROM ledger_state WHERE name = ?').pluck().get(FRESHNESS) as string | undefined,
          Number(totals.get('images_gone') ?? 0) > 0 ? (this.db.prepare(GONE_IDS_SQL).pluck().all() as number[]) : [],
        ),
        ...verifiedOf(this.db.prepare('SELECT value FROM ledger_state WHERE name = ?').pluck().get(LAST_VERIFY) as string | undefined),
        ...labelsOf(labelSummary(this.db)) };
    });
    return read.deferred();
  }

  async close(): Promise<void> {
    if (!this.db.open) return;
    if (this.exclusions?.bulk) sharedJournal(this.db);
    this.db.close();
  }
}
