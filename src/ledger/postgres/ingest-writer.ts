/**
 * The PostgreSQL side of ingest: rows go in with COPY, in one transaction per
 * commit, on one connection held for the whole ingest.
 *
 * Into an empty ledger (the first, 50M-ID load) it is a bulk load, as in
 * SQLite: images are COPYed straight into their table with no index, each
 * ID's images numbered here (an ID's rows come together in GBIF downloads),
 * and the indexes and the ids table are built once at the end (bulk-load.ts).
 * Into a ledger that has images, rows are COPYed into a temporary table and
 * merged by SQL at each commit (ingest-merge.ts): repeats of a (gbifID, URL) dropped, new
 * images numbered after the ID's last, done IDs that gained one reopened.
 *
 * Ingests into one database are serialised (an advisory lock held by the
 * connection): two at once would number one gbifID's images twice. A second
 * ingest waits for the first; a dead one's lock goes with its connection.
 */
import type pg from 'pg';
import { addTallies, afterBulkLoad, NO_TALLY } from '../rows.js';
import type { FinishOptions, ImageBatch, IngestTally, IngestWriter } from '../ledger.js';
import { beginBulkLoad, bulkLoadPending, completeBulkLoad } from './bulk-load.js';
import { applyPending, exclusionsPending } from './exclusions.js';
import { BinaryRows, endBinaryCopy, FLUSH_BYTES, FLUSH_ROOM, startBinaryCopy } from './copy-binary.js';
import { send, type CopyIn } from './copy-text.js';
import { NewIds } from './new-ids.js';
import { IngestIds, type Numbered } from './ingest-ids.js';
import { INGEST_LOCK } from './schema.js';
import { mergeStaged } from './ingest-merge.js';
import { removeUnlisted, SNAPSHOT_NUMBER } from './snapshots.js';
import { ListedImages } from '../listed-images.js';

/** Flushes of rows (FLUSH_BYTES each, 8 MB in all) a bulk load makes while its last transaction ends, before it waits for that end. */
const MAX_BACKLOG = (8 << 20) / FLUSH_BYTES;

/**
 * The gbifID a bulk load is numbering: its next imageIndex, and its URLs so
 * far (each one's hash, and where its bytes are, to tell a repeat from two
 * URLs whose hashes collide). One object, reused from ID to ID.
 */
class CurrentId {
  gbifId = -1;
  nextIndex = 0;
  /** URLs so far: the first `urls` entries of the arrays below (kept, not emptied: no allocation per ID). */
  private urls = 0;
  private readonly hashes: number[] = [];
  private readonly sources: Buffer[] = [];
  private readonly starts: number[] = [];
  private readonly ends: number[] = [];

  begin(gbifId: number): void {
    this.gbifId = gbifId;
    this.nextIndex = 0;
    this.urls = 0;
  }

  /** Whether the ID already has this URL: if not, it has now. */
  repeats(hash: number, bytes: Buffer, start: number, end: number): boolean {
    const { hashes, sources, starts, ends } = this;
    for (let k = 0; k < this.urls; k++) {
      if (hashes[k] === hash && bytes.compare(sources[k] as Buffer, starts[k], ends[k], start, end) === 0) return true;
    }
    const k = this.urls++;
    hashes[k] = hash;
    sources[k] = bytes;
    starts[k] = start;
    ends[k] = end;
    return false;
  }
}

export class PostgresIngestWriter implements IngestWriter {
  private copy: CopyIn | undefined;
  private readonly rows = new BinaryRows(FLUSH_ROOM);
  /** A bulk load into an empty ids table COPYs each gbifID as it first meets it (bulk-load.ts). */
  private readonly newIds = new NewIds();
  private copyIds = false;
  private bulkStarted = false;
  private readonly current = new CurrentId();
  private seq = 0;
  /**
   * A bulk load gives images their ids itself: the sequence's nextval, a
   * default evaluated per row, took a quarter of the server's COPY (0.65 of
   * 2.4 s at 2M rows). The sequence is moved past them in each transaction.
   */
  private nextImageId = 0;
  private hostImages = new Map<number, number>();
  private numbered: Numbered = { hostNames: [], packedAttributions: [], hosts: [], attributions: [] };
  private batch = { ...NO_TALLY };
  private committed = { ...NO_TALLY };
  /**
   * A bulk load's last transaction, still ending (its COPYs, counters,
   * COMMIT and fsync) while the next batch's rows are made: waiting for it
   * stopped the stream about 0.1 s a commit. The next COPY waits for it.
   */
  private committing: Promise<void> | undefined;
  private commitSettled = true;
  /**
   * Rows made while the last transaction ends, a flush each, sent when
   * the next one begins: the stream stops only if the end takes longer than
   * making MAX_BACKLOG flushes of rows.
   */
  private backlog: Buffer[] = [];

  private constructor(
    private readonly client: pg.PoolClient,
    /** Host and attribution ids' own connection (ingest-ids.ts). */
    private readonly side: pg.PoolClient,
    private readonly ids: IngestIds,
    private readonly bulk: boolean,
    /** The number of this snapshot (0: not a snapshot). */
    private readonly snapshot: number,
    /** What a snapshot into a ledger that had images lists (undefined otherwise: nothing to remove). */
    private readonly listed: ListedImages | undefined,
  ) {}

  static async open(pool: pg.Pool, options: { readonly snapshot?: boolean } = {}): Promise<PostgresIngestWriter> {
    const client = await pool.connect();
    const side = await pool.connect().catch((err: unknown) => {
      client.release();
      throw err;
    });
    try {
      await client.query('SELECT pg_advisory_lock($1)', [INGEST_LOCK]);
      await side.query('SET synchronous_commit = off');
      const empty = await client.query('SELECT NOT EXISTS (SELECT 1 FROM images) AS empty');
      await client.query('CREATE TEMP TABLE IF NOT EXISTS ingest_rows (seq bigint, gbif_id bigint, url text, url_hash bigint, host_id integer, attribution_id integer, creator text) ON COMMIT DELETE ROWS');
      const bulk = empty.rows[0].empty as boolean;
      const last = await client.query('SELECT value FROM herbdl_meta WHERE name = $1', [SNAPSHOT_NUMBER]);
      const snapshot = options.snapshot ? Number(last.rows[0]?.value ?? 0) + 1 : 0;
      const listed = snapshot > 0 && !bulk ? new ListedImages(Number((await client.query('SELECT max(image_id) AS id FROM images')).rows[0].id)) : undefined;
      return new PostgresIngestWriter(client, side, await IngestIds.open(side, bulk), bulk, snapshot, listed);
    } catch (err) {
      client.release(true);
      side.release(true);
      throw err;
    }
  }

  async addBatch(batch: ImageBatch): Promise<void> {
    // A bulk load's next transaction begins when its rows are first sent (flush), once the last has ended.
    if (!this.copy && !(this.bulkStarted && this.committing)) await this.open();
    if (batch.hostNames !== this.numbered.hostNames || batch.packedAttributions !== this.numbered.packedAttributions) {
      this.numbered = { hostNames: batch.hostNames, packedAttributions: batch.packedAttributions, hosts: [], attributions: [] };
    }
    await this.ids.resolve(batch, this.numbered);
    const { hosts, attributions } = this.numbered;
    const { gbifIds, urlHashes, textBytes, textEnds } = batch;
    for (let i = 0; i < batch.count; i++) {
      const gbifId = gbifIds[i] as number;
      const hash = urlHashes[i] as number;
      // The URL is text 2i, the creator 2i + 1 (ImageBatch).
      const urlStart = i === 0 ? 0 : (textEnds[2 * i - 1] as number);
      const urlEnd = textEnds[2 * i] as number;
      const hostId = hosts[batch.hosts[i] as number] as number;
      const attributionId = attributions[batch.attributions[i] as number] as number;
      const rows = this.rows;
      if (!this.bulk) {
        // The merge at commit decides what is new.
        rows.row(7);
        rows.int8(this.seq++);
        rows.int8(gbifId);
      } else {
        const current = this.current;
        if (current.gbifId !== gbifId) {
          current.begin(gbifId);
          this.batch.ids++;
          if (this.copyIds) this.newIds.note(gbifId);
        }
        if (current.repeats(hash, textBytes, urlStart, urlEnd)) {
          this.batch.duplicates++;
          continue;
        }
        rows.row(8);
        rows.int8(this.nextImageId++);
        rows.int8(gbifId);
        rows.int4(current.nextIndex++);
        this.hostImages.set(hostId, (this.hostImages.get(hostId) ?? 0) + 1);
        this.batch.images++;
      }
      // Then the same columns in both: url, url_hash, host_id, attribution_id, creator.
      rows.utf8(textBytes, urlStart, urlEnd);
      rows.int8(hash);
      rows.int4(hostId);
      rows.int4(attributionId);
      rows.utf8(textBytes, urlEnd, textEnds[2 * i + 1] as number);
      if (rows.bytes >= FLUSH_BYTES) await this.flush();
    }
  }

  async commit(): Promise<void> {
    if (!this.copy && this.rows.bytes === 0 && this.backlog.length === 0) return;
    await this.flush(true);
    const copy = this.copy as CopyIn;
    this.copy = undefined;
    const batch = this.batch;
    this.batch = { ...NO_TALLY };
    const hostImages = this.hostImages;
    this.hostImages = new Map();
    const newIds = this.newIds.take();
    const ending = this.end(copy, batch, hostImages, newIds, this.nextImageId - 1);
    if (!this.bulk) return ending;
    this.commitSettled = false;
    ending.then(
      () => (this.commitSettled = true),
      () => (this.commitSettled = true),
    ); // its error is thrown by the next COPY, rollback or finish
    this.committing = ending;
  }

  /** Ends a transaction: its COPYs, the counters its rows move, COMMIT. */
  private async end(copy: CopyIn, batch: IngestTally, hostImages: Map<number, number>, newIds: Float64Array, lastImageId: number): Promise<void> {
    await endBinaryCopy(copy);
    await this.newIds.copy(this.client, newIds);
    // The hosts and attributions these rows name are in before they commit.
    await this.ids.settle();
    const db = this.client;
    let tally = batch;
    if (this.bulk) {
      const ids = [...hostImages.keys()].sort((a, b) => a - b);
      await db.query(
        'UPDATE hosts h SET images = h.images + c.n, pending = h.pending + c.n FROM unnest($1::int[], $2::bigint[]) AS c(host_id, n) WHERE h.host_id = c.host_id',
        [ids, ids.map((id) => hostImages.get(id))],
      );
      // Not undone by a rollback: a transaction that does not commit leaves a gap in the ids, never a repeat.
      await db.query("SELECT setval('images_image_id', $1)", [lastImageId]);
    } else {
      const merged = await mergeStaged(db, this.listed);
      tally = { ...batch, ids: batch.ids + merged.ids, images: batch.images + merged.images, duplicates: batch.duplicates + merged.duplicates, reopened: batch.reopened + merged.reopened };
    }
    await db.query('COMMIT');
    this.committed = addTallies(this.committed, tally);
  }

  /** Waits for the last transaction to end; throws what went wrong with it. */
  private async ended(): Promise<void> {
    const committing = this.committing;
    this.committing = undefined;
    await committing;
  }

  async rollback(): Promise<void> {
    await this.ended().catch(() => {});
    if (this.copy) {
      this.copy.stream.destroy();
      await this.copy.done.catch(() => {});
      this.copy = undefined;
    }
    await this.client.query('ROLLBACK').catch(() => {});
    this.rows.take();
    this.backlog = [];
    this.newIds.clear();
    this.current.begin(-1);
    this.hostImages.clear();
    this.batch = { ...NO_TALLY };
  }

  async finish(options: FinishOptions = {}): Promise<void> {
    try {
      await this.commit();
      await this.ended();
      await this.ids.finish();
      if (this.bulkStarted) {
        this.committed = afterBulkLoad(this.committed, await completeBulkLoad(this.client, this.committed.ids, this.side));
        this.bulkStarted = false;
      }
      await this.client.query('BEGIN');
      const excluded = await applyPending(this.client);
      await this.client.query('COMMIT');
      this.committed = { ...this.committed, excluded: this.committed.excluded + excluded };
      // Into an empty ledger, a snapshot has nothing to remove: only its number is noted.
      if (this.snapshot > 0 && options.applySnapshot) this.committed = addTallies(this.committed, await removeUnlisted(this.client, this.snapshot, this.listed, options.maxRemoval));
    } finally {
      await this.client.query('SELECT pg_advisory_unlock($1)', [INGEST_LOCK]).catch(() => {});
      this.client.release();
      this.side.release();
    }
  }

  /** Completes a bulk load that died before its end, holding the ingest lock, and lets go. */
  async finishInterrupted(complete: (db: pg.PoolClient) => Promise<unknown>): Promise<void> {
    try {
      // Another ingest may have finished it while this one waited for the lock.
      if (await bulkLoadPending(this.client)) await complete(this.client);
    } finally {
      await this.client.query('SELECT pg_advisory_unlock($1)', [INGEST_LOCK]).catch(() => {});
      this.client.release();
      this.side.release();
    }
  }

  tally(): IngestTally {
    return this.committed;
  }

  /** Begins the next transaction and its COPY, once the last has ended. */
  private async open(): Promise<CopyIn> {
    await this.ended();
    await this.client.query('BEGIN');
    // New IDs may be listed as excluded: finish() applies the list (or the next open, if this ingest dies first).
    await exclusionsPending(this.client);
    if (this.bulk && !this.bulkStarted) {
      this.copyIds = await beginBulkLoad(this.client);
      this.nextImageId = Number((await this.client.query("SELECT nextval('images_image_id') AS id")).rows[0].id);
      this.bulkStarted = true;
    }
    const sql = this.bulk
      ? 'COPY images (image_id, gbif_id, image_index, url, url_hash, host_id, attribution_id, creator) FROM STDIN'
      : 'COPY ingest_rows (seq, gbif_id, url, url_hash, host_id, attribution_id, creator) FROM STDIN';
    this.copy = startBinaryCopy(this.client, sql);
    return this.copy;
  }

  /** Sends the rows made so far, or keeps them aside while the last transaction ends (unless `now`). */
  private async flush(now = false): Promise<void> {
    if (this.rows.bytes === 0 && this.backlog.length === 0) return;
    if (!now && !this.copy && !this.commitSettled && this.backlog.length < MAX_BACKLOG) {
      this.backlog.push(this.rows.take());
      return;
    }
    const copy = this.copy ?? (await this.open());
    for (const rows of this.backlog) await send(copy, rows);
    this.backlog = [];
    if (this.rows.bytes > 0) await send(copy, this.rows.take());
  }
}
