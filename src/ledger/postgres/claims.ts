/**
 * Claims on a shared ledger. A claim is one statement: the next pending (or
 * due) gbifIDs that no live worker holds, locked with FOR UPDATE SKIP LOCKED
 * so workers claiming at the same moment pass each other by, and marked with
 * the claimer's worker_id. A claim holds while its worker's lease does
 * (workers.lease_until, renewed by the heartbeat): a dead worker's IDs come
 * free when its lease runs out, with no sweep.
 *
 * The IDs' images come in more statements per batch, never one per ID; so do
 * stored copies of their URLs, for the IDs a run takes in (withStoredCopies).
 */
import type pg from 'pg';
import type { ClaimedId, ClaimedImage, FetchedPart, StoredCopy } from '../ledger.js';
import { urlHash } from '../../input/url-hash.js';
import { BLOCKED_LESS, outcomeOf, STATE } from '../rows.js';
import { hasFile } from '../snapshots.js';
import { transaction } from './connect.js';
import { heldElsewhere } from './url-fetches.js';

/**
 * Claims the IDs the statement `select` picks (its rows: gbif_id), for worker `me`; returns them with what the downloader needs
 * (`fetching`: their shared URLs get fetch leases).
 */
export async function claimWith(pool: pg.Pool, me: number, select: string, params: unknown[], due = false, fetching = true, unparks = false): Promise<ClaimedId[]> {
  // When it was due only for a failed one (claimed for its retry): a pending one has none (ClaimedId.dueAt).
  // In a transaction of its own, so that a claim whose answer was lost with its connection is not made again
  // (transaction()): made again, it took the next IDs, and the first stayed held by this worker, undone, to its end.
  // A claim ends a gbifID's parking (none but a take-up meets a parked one). With `unparks` (the select gives each
  // parked gbifID's was_blocked, its host_id), each host's count of parked pending ones goes down by those taken
  // up, in the same statement, and each comes with the host it was parked behind.
  const unparked = unparks ? `, c.was_blocked, ids.state = ${STATE.pending} AS was_pending, (SELECT h.host FROM hosts h WHERE h.host_id = c.was_blocked) AS blocked_by` : '';
  const rows = await transaction(pool, async (db) => {
    const claim = `UPDATE ids SET worker_id = $1, blocked_host = NULL FROM (${select} FOR UPDATE SKIP LOCKED) c
       WHERE ids.gbif_id = c.gbif_id RETURNING ids.gbif_id, ids.attempts, CASE WHEN ids.state = ${STATE.failed} THEN ids.next_attempt_at END AS next_attempt_at${unparked}`;
    const claimed = await db.query(
      !unparks
        ? claim
        : `WITH claimed AS (${claim}), counted AS (
             UPDATE hosts SET blocked_ids = ${BLOCKED_LESS('c.n')}
             FROM (SELECT was_blocked, count(*) AS n FROM claimed WHERE was_pending GROUP BY 1) c WHERE hosts.host_id = c.was_blocked)
           SELECT * FROM claimed`,
      [me, ...params],
    );
    return claimed.rows as { gbif_id: number; attempts: number; next_attempt_at: number | null; blocked_by?: string }[];
  });
  return withImages(pool, due ? rows : rows.map((r) => ({ gbif_id: r.gbif_id, attempts: r.attempts, blocked_by: r.blocked_by })), fetching ? me : undefined);
}

/**
 * The IDs with their images in claim order: by due time (retryable claims),
 * then by key. With `me` (a claim to fetch), URLs another pending gbifID
 * shares get a fetch lease (url-fetches.ts): those another worker holds are
 * marked `elsewhere`.
 */
export async function withImages(pool: pg.Pool, rows: readonly { gbif_id: number; attempts: number; next_attempt_at?: number | null; blocked_by?: string }[], me?: number): Promise<ClaimedId[]> {
  if (rows.length === 0) return [];
  const ids = rows.map((r) => r.gbif_id);
  const images = await pool.query(
    `SELECT i.gbif_id, i.image_id, i.image_index, i.url, h.host, i.state, i.file_index, i.received_format, i.sha256
     FROM images i JOIN hosts h USING (host_id) WHERE i.gbif_id = ANY($1::bigint[]) ORDER BY i.gbif_id, i.image_index`,
    [ids],
  );
  const byId = new Map<number, typeof images.rows>();
  const withFiles = new Set<number>();
  for (const r of images.rows) {
    // A removed image (a newer export lacks it) is not fetched; its NN stays its own, never given to another.
    if (r.state === STATE.removed) {
      if (r.sha256 !== null) withFiles.add(r.gbif_id);
      continue;
    }
    if (r.state === STATE.done) withFiles.add(r.gbif_id);
    let list = byId.get(r.gbif_id);
    if (!list) byId.set(r.gbif_id, (list = []));
    list.push(r);
  }
  // Leases first, stored copies after (withStoredCopies): a gbifID published meanwhile (its lease deleted with it) is then linked, not fetched again.
  const elsewhere = me === undefined ? new Set<string>() : await heldElsewhere(pool, me, [...byId.values()].flat().map((r) => r.url as string));
  const storedFiles = await storedFileIndexes(pool, [...withFiles]);
  return [...rows]
    .sort((a, b) => (a.next_attempt_at ?? 0) - (b.next_attempt_at ?? 0) || a.gbif_id - b.gbif_id)
    .map((row) => {
      const list = byId.get(row.gbif_id) ?? [];
      const claimedImages = list.map((r): ClaimedImage => {
        const image = { imageId: r.image_id, imageIndex: r.image_index, url: r.url, host: r.host };
        return elsewhere.has(r.url) ? { ...image, elsewhere: true } : image;
      });
      const claimed: ClaimedId = { gbifId: row.gbif_id, attempts: row.attempts, images: claimedImages, ...(row.blocked_by ? { blockedBy: row.blocked_by } : {}) };
      const dueAt = row.next_attempt_at === undefined || row.next_attempt_at === null ? {} : { dueAt: row.next_attempt_at };
      const files = storedFiles.get(row.gbif_id);
      return { ...claimed, ...dueAt, ...(files ? { storedFiles: files } : {}) };
    });
}

/** The claimed IDs, each image with a stored copy of its URL where there is one (DownloadLedger.withStoredCopies). */
export async function withStoredCopies(pool: pg.Pool, claimed: readonly ClaimedId[]): Promise<ClaimedId[]> {
  const stored = await storedCopies(pool, claimed.flatMap((id) => id.images.map((image) => image.url)));
  if (stored.size === 0) return [...claimed];
  return claimed.map((id) => ({
    ...id,
    images: id.images.map((image) => {
      // Its own stored copy first (a reopened or partly adopted gbifID), else one under another gbifID;
      // never its own IIIF document, which is read again (its canvases may have changed).
      const copies = stored.get(image.url);
      const copy = copies?.find((c) => c.gbifId === id.gbifId && !c.parts) ?? copies?.find((c) => c.gbifId !== id.gbifId);
      if (!copy) return image;
      // Linked from its copy: nobody's fetch to wait for.
      const { elsewhere: _, ...linked } = image;
      return { ...linked, stored: copy };
    }),
  }));
}

/** Done copies of these URLs, by URL (a few per URL at most), with a IIIF identifier's parts; not one whose file verify found lost (its sha256 forgotten). */
export async function storedCopies(pool: pg.Pool, urls: readonly string[]): Promise<Map<string, StoredCopy[]>> {
  const found = new Map<string, StoredCopy[]>();
  if (urls.length === 0) return found;
  const hashes = [...new Set(urls.map(urlHash))];
  const rows = await pool.query(
    `SELECT image_id, gbif_id, COALESCE(file_index, image_index) AS file_index, url, http_status, final_url, content_type, bytes, sha256, width, height, received_format
     FROM images WHERE url_hash = ANY($1::bigint[]) AND state = 1 AND sha256 IS NOT NULL`,
    [hashes],
  );
  const wanted = new Set(urls);
  const iiif = rows.rows.filter((r) => wanted.has(r.url) && r.received_format?.startsWith('iiif'));
  const parts = new Map<number, FetchedPart[]>();
  if (iiif.length > 0) {
    const partRows = await pool.query(
      `SELECT image_id, part_index, file_index, url, http_status, final_url, content_type, bytes, sha256, width, height, received_format
       FROM image_parts WHERE image_id = ANY($1::bigint[]) ORDER BY image_id, part_index`,
      [iiif.map((r) => r.image_id)],
    );
    for (const p of partRows.rows) {
      let list = parts.get(p.image_id);
      if (!list) parts.set(p.image_id, (list = []));
      list.push({ partIndex: p.part_index, fileIndex: p.file_index, url: p.url, ...outcomeOf(p) });
    }
  }
  for (const r of rows.rows) {
    if (!wanted.has(r.url)) continue;
    let copy: StoredCopy = { gbifId: r.gbif_id, fileIndex: r.file_index, image: outcomeOf(r) };
    if (r.received_format?.startsWith('iiif')) {
      const list = parts.get(r.image_id);
      // An expanded identifier with no parts recorded, or a part verify found lost (no sha256), cannot be linked: fetch it.
      if (!list || list.length === 0 || list.some((p) => p.sha256 === null)) continue;
      copy = { ...copy, parts: list };
    }
    let list = found.get(r.url);
    if (!list) found.set(r.url, (list = []));
    list.push(copy);
  }
  return found;
}

/** For reopened gbifIDs: the NNs of the files each has in the tree now. */
export async function storedFileIndexes(pool: pg.Pool, gbifIds: readonly number[]): Promise<Map<number, number[]>> {
  const found = new Map<number, number[]>();
  if (gbifIds.length === 0) return found;
  const rows = await pool.query(
    `SELECT gbif_id, COALESCE(file_index, image_index) AS nn FROM images
       WHERE gbif_id = ANY($1::bigint[]) AND ${hasFile()} AND (received_format IS NULL OR received_format NOT LIKE 'iiif%')
     UNION SELECT i.gbif_id, p.file_index FROM image_parts p JOIN images i USING (image_id) WHERE i.gbif_id = ANY($1::bigint[]) AND ${hasFile('i')}`,
    [gbifIds],
  );
  for (const r of rows.rows) {
    let list = found.get(r.gbif_id);
    if (!list) found.set(r.gbif_id, (list = []));
    list.push(r.nn);
  }
  return found;
}
