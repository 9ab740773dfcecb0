/**
 * An incremental ingest's merge (a ledger that has images): the batch's rows,
 * staged by COPY in ingest_rows, join the ledger by SQL at each commit:
 * repeats of a (gbifID, URL) dropped, new images numbered after the ID's
 * last, done IDs that gained one reopened, removed ones brought back.
 */
import type pg from 'pg';
import type { ListedImages } from '../listed-images.js';
import { probeByIndex } from './probes.js';
import { listStaged } from './snapshots.js';

/** What one merge added, counted as the SQLite writer counts. */
export interface Merged {
  readonly ids: number;
  readonly images: number;
  readonly duplicates: number;
  readonly reopened: number;
}

/**
 * Merges the rows an incremental ingest staged in ingest_rows (this
 * transaction's), with every counter status reads; in a snapshot, marks the
 * ledger's images they list in `listed`.
 */
export async function mergeStaged(db: pg.PoolClient, listed: ListedImages | undefined): Promise<Merged> {
  await probeByIndex(db);
  // Each (gbifID, URL) once, first as staged, with the image the ledger has for it if any: the one probe.
  await db.query(
    `CREATE TEMP TABLE ingest_matched ON COMMIT DROP AS
     SELECT f.*, i.image_id AS known_id, i.state AS known_state
     FROM (SELECT DISTINCT ON (gbif_id, url) * FROM ingest_rows ORDER BY gbif_id, url, seq) f
     LEFT JOIN images i ON i.gbif_id = f.gbif_id AND i.url = f.url`,
  );
  const restored = listed ? await listStaged(db, listed) : 0;
  await db.query(
    `CREATE TEMP TABLE ingest_new ON COMMIT DROP AS
     SELECT fr.*, coalesce(m.next, 0) + row_number() OVER (PARTITION BY fr.gbif_id ORDER BY fr.seq) - 1 AS image_index
     FROM (SELECT seq, gbif_id, url, url_hash, host_id, attribution_id, creator FROM ingest_matched WHERE known_id IS NULL) fr
     LEFT JOIN LATERAL (SELECT max(image_index) + 1 AS next FROM images i WHERE i.gbif_id = fr.gbif_id) m ON true`,
  );
  await db.query(
    `INSERT INTO images (gbif_id, image_index, url, url_hash, host_id, attribution_id, creator)
     SELECT gbif_id, image_index, url, url_hash, host_id, attribution_id, creator FROM ingest_new ORDER BY gbif_id, image_index`,
  );
  const staged = (await db.query('SELECT count(*)::bigint AS n FROM ingest_rows')).rows[0].n as number;
  const images = (await db.query('SELECT count(*)::bigint AS n FROM ingest_new')).rows[0].n as number;
  // The gbifIDs that had rows and gain an image, locked before they are reopened, in gbifID order as a
  // worker's fence locks its batch (outcomes.ts): a worker recording one done meanwhile either commits
  // first, and the reopen below finds it done, or waits for this commit and finds the new image, leaving
  // it pending. Without the lock, a worker that read its images before this commit made it done without
  // the new one, and the reopen, which had found it pending, passed it by. FOR KEY SHARE is the weakest
  // lock the fence's FOR UPDATE waits for: a worker's plain updates of the rows it holds (setting one
  // aside, letting one go) do not, so none of them, made while it holds a host's row, waits on this
  // ingest while the ingest waits on that host's row below (a deadlock, with FOR UPDATE here).
  await db.query('SELECT 1 FROM ids WHERE gbif_id = ANY(ARRAY(SELECT DISTINCT gbif_id FROM ingest_new)) ORDER BY gbif_id FOR KEY SHARE');
  const ids = (await db.query('WITH added AS (INSERT INTO ids (gbif_id) SELECT DISTINCT gbif_id FROM ingest_new ORDER BY 1 ON CONFLICT DO NOTHING RETURNING 1) SELECT count(*)::bigint AS n FROM added')).rows[0].n as number;
  // A done ID that gained an image is incomplete on disk: fetch it again.
  const reopened = (await db.query('WITH re AS (UPDATE ids SET state = 0 WHERE state = 1 AND gbif_id IN (SELECT gbif_id FROM ingest_new) RETURNING 1) SELECT count(*)::bigint AS n FROM re')).rows[0].n as number;
  // A removed ID that gained an image is back, parked behind no host (a removal made before removals unparked kept the mark).
  const back = (await db.query('WITH re AS (UPDATE ids SET state = 0, blocked_host = NULL WHERE state = 4 AND gbif_id IN (SELECT gbif_id FROM ingest_new) RETURNING 1) SELECT count(*)::bigint AS n FROM re')).rows[0].n as number;
  // Counters in the order workers move them (outcomes.ts: hosts by id, then ids_done before ids_pending), so
  // that an ingest beside workers waits on them, never deadlocks with them (a lost deadlock fails the ingest).
  await db.query('SELECT 1 FROM hosts WHERE host_id = ANY(ARRAY(SELECT DISTINCT host_id FROM ingest_new)) ORDER BY host_id FOR NO KEY UPDATE');
  await db.query(
    `UPDATE hosts h SET images = h.images + c.n, pending = h.pending + c.n
     FROM (SELECT host_id, count(*) AS n FROM ingest_new GROUP BY host_id) c WHERE h.host_id = c.host_id`,
  );
  if (reopened > 0) await db.query("UPDATE totals SET value = value - $1 WHERE name = 'ids_done'", [reopened]);
  if (ids + reopened + back > 0) await db.query("UPDATE totals SET value = value + $1 WHERE name = 'ids_pending'", [ids + reopened + back]);
  if (back > 0) await db.query("UPDATE totals SET value = value - $1 WHERE name = 'ids_removed'", [back]);
  return { ids, images: images + restored, duplicates: staged - images - restored, reopened };
}
