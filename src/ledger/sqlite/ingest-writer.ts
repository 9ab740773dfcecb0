/**
 * The SQLite side of ingest.
 *
 * Rows of one gbifID come together in GBIF downloads, so the current ID's
 * images are kept in memory and an ID seen again later is read back from the
 * ledger: correct for any order, fast for the usual one.
 *
 * Two modes. Into an empty ledger (the first, 50M-ID load) it is a bulk load:
 * images are appended with no index, and the derived parts (the image indexes,
 * the ids table) are built once at the end by sorting (bulk-load.ts), which
 * costs a fraction of 50M random B-tree inserts. Into a ledger that has images it adds incrementally, every
 * index live. Counters are summed in memory and written at commit, in the
 * same transaction as the rows they count.
 */
import type Database from 'better-sqlite3';
import { unpackAttribution } from '../../input/rows.js';
import { addTallies, afterBulkLoad, NO_TALLY } from '../rows.js';
import type { FinishOptions, ImageBatch, IngestTally, IngestWriter } from '../ledger.js';
import { appendOnlyJournal, beginBulkLoad, completeBulkLoad, sharedJournal } from './bulk-load.js';
import { applyExclusions, exclusionsPending } from './exclusions.js';
import { STATE } from './schema.js';
import { IMAGES_REMOVED, TOTAL_NAME } from '../rows.js';
import { removeUnlisted, SNAPSHOT_NUMBER } from './snapshots.js';
import { ListedImages } from '../listed-images.js';

interface CurrentId {
  gbifId: number;
  /** The ID's state, read from the ledger only once it matters (it gained an image): undefined until then. */
  state: number | undefined;
  nextIndex: number;
  urls: string[];
  /** In a snapshot: the ID's images already in the ledger and not yet listed by it, by URL. */
  unlisted?: Map<string, { imageId: number; state: number; hostId: number }>;
}

interface HostEntry {
  hostId: number;
  newImages: number;
}

/** Attribution ids remembered in memory; past this many (a dataset with very varied rows) the memory starts again. */
const MAX_CACHED_ATTRIBUTIONS = 50_000;

export class SqliteIngestWriter implements IngestWriter {
  private readonly stmt;
  private readonly bulk: boolean;
  private bulkStarted = false;
  private hosts = new Map<string, HostEntry>();
  private attributions = new Map<string, number>();
  private current: CurrentId | undefined;
  /** The batch's host and attribution lists, and what their numbers resolved to. */
  private numbered: { hostNames: readonly string[]; packedAttributions: readonly string[]; hosts: HostEntry[]; attributionIds: number[] } = {
    hostNames: [],
    packedAttributions: [],
    hosts: [],
    attributionIds: [],
  };
  private batch = { ...NO_TALLY };
  private committed = { ...NO_TALLY };
  /** gbifIDs and images a snapshot brought back from removed, this batch (counters move at commit). */
  private restored = { ids: 0, images: 0 };
  private inTransaction = false;
  /** The number of this snapshot (0: not a snapshot). */
  private readonly snapshot: number;
  /** What a snapshot into a ledger that had images lists (undefined otherwise: nothing to remove). */
  private readonly listed: ListedImages | undefined;

  constructor(
    private readonly db: Database.Database,
    options: { readonly snapshot?: boolean } = {},
  ) {
    this.snapshot = options.snapshot ? Number(db.prepare('SELECT value FROM ledger_state WHERE name = ?').pluck().get(SNAPSHOT_NUMBER) ?? 0) + 1 : 0;
    this.bulk = db.prepare('SELECT NOT EXISTS (SELECT 1 FROM images)').pluck().get() === 1;
    if (this.bulk) {
      // A bulk load makes only new pages.
      appendOnlyJournal(db);
      // It only appends (its hot pages are the right edges of its B-trees), so a small page
      // cache costs it nothing in speed and keeps peak RSS well under 200 MB however large the
      // file (measured at 6M rows). An incremental ingest, whose index inserts land anywhere, keeps more.
      db.pragma('cache_size = -16384');
    }
    this.listed = this.snapshot > 0 && !this.bulk ? new ListedImages(Number(db.prepare('SELECT max(image_id) FROM images').pluck().get())) : undefined;
    this.stmt = {
      insertId: db.prepare('INSERT INTO ids(gbif_id) VALUES (?) ON CONFLICT DO NOTHING'),
      idState: db.prepare('SELECT state FROM ids WHERE gbif_id = ?').pluck(),
      idImages: db.prepare('SELECT image_index, url, image_id, state, host_id FROM images WHERE gbif_id = ?').raw(),
      restore: db.prepare(`UPDATE images SET state = ${STATE.pending}, next_attempt_at = NULL WHERE image_id = ?`),
      // A removed one comes back parked behind no host (a removal made before removals unparked kept the mark).
      reopenId: db.prepare(`UPDATE ids SET state = ${STATE.pending}, blocked_host = NULL WHERE gbif_id = ?`),
      insertImage: db.prepare('INSERT INTO images(gbif_id, image_index, url, url_hash, host_id, attribution_id, creator) VALUES (?, ?, ?, ?, ?, ?, ?)'),
      insertAttribution: db
        .prepare(
          `INSERT INTO attributions(type, format, license, rights_holder, publisher) VALUES (?, ?, ?, ?, ?)
           ON CONFLICT DO UPDATE SET type = excluded.type RETURNING attribution_id`,
        )
        .pluck(),
      insertHost: db.prepare('INSERT INTO hosts(host) VALUES (?) ON CONFLICT(host) DO UPDATE SET host = excluded.host RETURNING host_id').pluck(),
      addHostImages: db.prepare('UPDATE hosts SET images = images + ?, pending = pending + ? WHERE host_id = ?'),
      addTotal: db.prepare('UPDATE totals SET value = value + ? WHERE name = ?'),
    };
  }

  async addBatch(batch: ImageBatch): Promise<void> {
    if (!this.inTransaction) this.begin();
    if (batch.hostNames !== this.numbered.hostNames || batch.packedAttributions !== this.numbered.packedAttributions) {
      this.numbered = { hostNames: batch.hostNames, packedAttributions: batch.packedAttributions, hosts: [], attributionIds: [] };
    }
    const { hosts, attributionIds } = this.numbered;
    const { gbifIds } = batch;
    for (let i = 0; i < batch.count; i++) {
      const gbifId = gbifIds[i] as number;
      const url = batch.text(2 * i);
      const current = this.current?.gbifId === gbifId ? this.current : this.load(gbifId);
      if (current.urls.includes(url)) {
        const known = current.unlisted?.get(url);
        if (known) this.list(current, url, known);
        this.batch.duplicates++;
        continue;
      }
      current.urls.push(url);
      const hostNumber = batch.hosts[i] as number;
      const host = (hosts[hostNumber] ??= this.host(batch.hostNames[hostNumber] as string));
      const attributionNumber = batch.attributions[i] as number;
      const attributionId = (attributionIds[attributionNumber] ??= this.attributionId(batch.packedAttributions[attributionNumber] as string));
      this.stmt.insertImage.run(gbifId, current.nextIndex++, url, batch.urlHashes[i], host.hostId, attributionId, batch.text(2 * i + 1));
      host.newImages++;
      this.batch.images++;
      this.gained(current);
    }
  }

  /** The ID gained an image: a done one is incomplete on disk, a removed one is back; both are fetched (again). */
  private gained(current: CurrentId): void {
    current.state ??= this.stmt.idState.get(current.gbifId) as number;
    if (current.state !== STATE.done && current.state !== STATE.removed) return;
    this.stmt.reopenId.run(current.gbifId);
    if (current.state === STATE.done) this.batch.reopened++;
    else this.restored.ids++;
    current.state = STATE.pending;
  }

  /** A snapshot lists an image the ledger has: marked, so it stays; one an earlier snapshot removed is back, pending. */
  private list(current: CurrentId, url: string, image: { imageId: number; state: number; hostId: number }): void {
    current.unlisted?.delete(url);
    this.listed?.mark(image.imageId);
    if (image.state !== STATE.removed) return;
    this.stmt.restore.run(image.imageId);
    this.stmt.addHostImages.run(1, 1, image.hostId);
    this.restored.images++;
    this.batch.images++;
    this.batch.duplicates--;
    this.gained(current);
  }

  async commit(): Promise<void> {
    if (!this.inTransaction) return;
    for (const entry of this.hosts.values()) {
      if (entry.newImages > 0) {
        this.stmt.addHostImages.run(entry.newImages, entry.newImages, entry.hostId);
        entry.newImages = 0;
      }
    }
    // A bulk load counts its IDs when it builds the ids table, in finish().
    const newPending = (this.bulk ? 0 : this.batch.ids) + this.batch.reopened + this.restored.ids;
    if (newPending > 0) this.stmt.addTotal.run(newPending, 'ids_pending');
    if (this.batch.reopened > 0) this.stmt.addTotal.run(-this.batch.reopened, 'ids_done');
    if (this.restored.ids > 0) this.stmt.addTotal.run(-this.restored.ids, TOTAL_NAME[STATE.removed]);
    if (this.restored.images > 0) this.stmt.addTotal.run(-this.restored.images, IMAGES_REMOVED);
    this.restored = { ids: 0, images: 0 };
    this.db.exec('COMMIT');
    this.inTransaction = false;
    // The current gbifID's state is read again in the next transaction: a run beside this ingest may have made it done meanwhile.
    if (this.current) this.current.state = undefined;
    this.committed = addTallies(this.committed, this.batch);
    this.batch = { ...NO_TALLY };
  }

  async rollback(): Promise<void> {
    // SQLite has already rolled back a transaction that failed with a full disk or an I/O error: a ROLLBACK then would throw, and hide why.
    if (this.db.inTransaction) this.db.exec('ROLLBACK');
    this.inTransaction = false;
    // Cached host and attribution ids and the current ID may name rows that no longer exist.
    this.hosts = new Map();
    this.attributions = new Map();
    this.numbered = { hostNames: [], packedAttributions: [], hosts: [], attributionIds: [] };
    this.current = undefined;
    this.batch = { ...NO_TALLY };
    this.restored = { ids: 0, images: 0 };
  }

  async finish(options: FinishOptions = {}): Promise<void> {
    await this.commit();
    if (this.bulkStarted) {
      this.committed = afterBulkLoad(this.committed, completeBulkLoad(this.db, this.committed.ids));
      this.bulkStarted = false;
      sharedJournal(this.db);
    }
    this.committed = { ...this.committed, excluded: this.committed.excluded + applyExclusions(this.db) };
    // Into an empty ledger, a snapshot has nothing to remove: only its number is noted.
    if (this.snapshot > 0 && options.applySnapshot) this.committed = addTallies(this.committed, removeUnlisted(this.db, this.snapshot, this.listed, options.maxRemoval));
  }

  tally(): IngestTally {
    return this.committed;
  }

  private begin(): void {
    this.db.exec('BEGIN IMMEDIATE');
    this.inTransaction = true;
    // New IDs may be listed as excluded: finish() applies the list (or the next open, if this ingest dies first).
    exclusionsPending(this.db);
    if (this.bulk && !this.bulkStarted) {
      // In the same transaction as the first rows: if this load dies, the next
      // open sees the flag and builds what the load did not get to.
      beginBulkLoad(this.db);
      this.bulkStarted = true;
    }
  }

  private load(gbifId: number): CurrentId {
    // New to the ledger; in a bulk load every run of rows counts as new (no index yet: a revisit is caught when the load ends).
    if (this.bulk) return this.fresh(gbifId);
    // Seen before (in an earlier ingest, or earlier in this input, out of order) if it has images:
    // one lookup by the images' index; the ids table is read only if the ID gains one (gained()).
    // A snapshot reads every ID of the ledger this way, so lookups are what it costs.
    const rows = this.stmt.idImages.all(gbifId) as [number, string, number, number, number][];
    if (rows.length === 0 && this.stmt.insertId.run(gbifId).changes === 1) return this.fresh(gbifId);
    // Indexes run on past every image the ID ever had, removed ones too: an NN is never given twice.
    let nextIndex = 0;
    const urls: string[] = [];
    const unlisted = this.listed ? new Map<string, { imageId: number; state: number; hostId: number }>() : undefined;
    for (const [index, url, imageId, imageState, hostId] of rows) {
      urls.push(url);
      if (index >= nextIndex) nextIndex = index + 1;
      unlisted?.set(url, { imageId, state: imageState, hostId });
    }
    this.current = unlisted ? { gbifId, state: undefined, nextIndex, urls, unlisted } : { gbifId, state: undefined, nextIndex, urls };
    return this.current;
  }

  private fresh(gbifId: number): CurrentId {
    this.batch.ids++;
    this.current = { gbifId, state: STATE.pending, nextIndex: 0, urls: [] };
    return this.current;
  }

  private attributionId(packed: string): number {
    let id = this.attributions.get(packed);
    if (id === undefined) {
      const a = unpackAttribution(packed);
      id = this.stmt.insertAttribution.get(a.type, a.format, a.license, a.rightsHolder, a.publisher) as number;
      if (this.attributions.size >= MAX_CACHED_ATTRIBUTIONS) this.attributions.clear();
      this.attributions.set(packed, id);
    }
    return id;
  }

  private host(name: string): HostEntry {
    let entry = this.hosts.get(name);
    if (!entry) {
      entry = { hostId: this.stmt.insertHost.get(name) as number, newImages: 0 };
      this.hosts.set(name, entry);
    }
    return entry;
  }
}
