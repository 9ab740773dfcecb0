/**
 * Recording outcomes on a shared ledger: a batch of gbifIDs per transaction,
 * each statement over arrays (unnest), and every counter `status` reads moved
 * in the same transaction. Every write is fenced by the claim: a worker
 * records only gbifIDs it still holds, so one whose lease ran out (and whose
 * IDs went to another worker) is stopped, never allowed to overwrite.
 */
import type pg from 'pg';
import { LedgerError } from '../../errors.js';
import type { DoneId, FailedId, FetchedImage } from '../ledger.js';
import { STATE, TOTAL_NAME } from '../rows.js';
import { resetDerivatives } from './derivatives.js';
import { LET_GO } from './live.js';
import { releaseFetches } from './url-fetches.js';

/** Counter moves gathered over a batch, written at its end in one fixed order (hosts, error counts, totals): no two batches deadlock. */
class Moves {
  // An excluded image (state 3) has no host counter: the fourth delta is dropped.
  readonly hosts = new Map<number, [number, number, number, number]>();
  readonly errors = new Map<string, number>();
  readonly totals = [0, 0, 0, 0];

  /** An image out of its old state, and out of its old error count: one failed again is counted anew by the caller (as in SQLite's outcomes). */
  image(old: { state: number; error_code: string | null; host_id: number }, to: number): void {
    if (old.state === 2 && old.error_code) this.error(old.error_code, old.host_id, -1);
    if (old.state === to) return;
    let delta = this.hosts.get(old.host_id);
    if (!delta) this.hosts.set(old.host_id, (delta = [0, 0, 0, 0]));
    delta[old.state] = (delta[old.state] as number) - 1;
    delta[to] = (delta[to] as number) + 1;
  }

  error(code: string, hostId: number, n: number): void {
    const key = `${hostId}\t${code}`;
    this.errors.set(key, (this.errors.get(key) ?? 0) + n);
  }

  id(from: number, to: number): void {
    if (from === to) return;
    this.totals[from] = (this.totals[from] as number) - 1;
    this.totals[to] = (this.totals[to] as number) + 1;
  }

  async write(db: pg.PoolClient): Promise<void> {
    const hostIds = [...this.hosts.keys()].sort((a, b) => a - b);
    if (hostIds.length > 0) {
      const d = hostIds.map((h) => this.hosts.get(h) as [number, number, number, number]);
      await db.query(
        `UPDATE hosts h SET pending = h.pending + c.p, done = h.done + c.d, failed = h.failed + c.f
         FROM unnest($1::int[], $2::bigint[], $3::bigint[], $4::bigint[]) AS c(host_id, p, d, f) WHERE h.host_id = c.host_id`,
        [hostIds, d.map((x) => x[0]), d.map((x) => x[1]), d.map((x) => x[2])],
      );
    }
    const keys = [...this.errors.keys()].sort();
    if (keys.length > 0) {
      await db.query(
        `INSERT INTO error_counts (host_id, code, images) SELECT * FROM unnest($1::int[], $2::text[], $3::bigint[]) ORDER BY 1, 2
         ON CONFLICT (code, host_id) DO UPDATE SET images = error_counts.images + excluded.images`,
        [keys.map((k) => Number(k.split('\t')[0])), keys.map((k) => k.split('\t')[1]), keys.map((k) => this.errors.get(k))],
      );
    }
    for (const state of [1, 2, 0, 3]) {
      const n = this.totals[state] as number;
      if (n !== 0) await db.query('UPDATE totals SET value = value + $1 WHERE name = $2', [n, TOTAL_NAME[state]]);
    }
  }
}

/**
 * The worker's own tally, moved last in its transaction: the heartbeat
 * renews the same row, so the row is locked only while the commit ends,
 * never while the transaction waits on another worker's counters.
 */
async function countForWorker(db: pg.PoolClient, me: number, column: 'done' | 'failed', n: number): Promise<void> {
  await db.query(`UPDATE workers SET ${column} = ${column} + $2 WHERE worker_id = $1`, [me, n]);
}

/** Locks the batch's ID rows and checks this worker holds every one. */
async function fence(db: pg.PoolClient, me: number, ids: readonly number[]): Promise<Map<number, number>> {
  const rows = await db.query('SELECT gbif_id, state, worker_id FROM ids WHERE gbif_id = ANY($1::bigint[]) ORDER BY gbif_id FOR UPDATE', [ids]);
  const lost = rows.rows.find((r) => r.worker_id !== me);
  if (lost || rows.rows.length !== ids.length) {
    throw new LedgerError(
      `this worker no longer holds gbifID ${lost?.gbif_id ?? ids[0]}: its lease ran out (no heartbeat for --lease seconds) and another worker may have taken its claims; stopping`,
      'lease_lost',
    );
  }
  return new Map(rows.rows.map((r) => [r.gbif_id as number, r.state as number]));
}

interface ImageState {
  readonly gbif_id: number;
  readonly state: number;
  readonly error_code: string | null;
  readonly host_id: number;
}

async function imageStates(db: pg.PoolClient, ids: readonly number[]): Promise<Map<number, ImageState>> {
  const rows = await db.query('SELECT image_id, gbif_id, state, error_code, host_id FROM images WHERE gbif_id = ANY($1::bigint[])', [ids]);
  return new Map(rows.rows.map((r) => [r.image_id as number, r as ImageState]));
}

/** gbifIDs with an image, pending or failed, that is not among those just done: added since they were claimed (an ingest beside the run). */
function lackingAnImage(before: Map<number, ImageState>, done: readonly FetchedImage[]): Set<number> {
  const lacking = new Set<number>();
  if (before.size <= done.length) return lacking;
  const doneIds = new Set(done.map((i) => i.imageId));
  for (const [imageId, image] of before) if (!doneIds.has(imageId) && (image.state === 0 || image.state === 2)) lacking.add(Number(image.gbif_id));
  return lacking;
}

/** Marks images done with their outcomes and IIIF parts; their counter moves go into `moves`. Returns them. */
async function recordImages(db: pg.PoolClient, before: Map<number, ImageState>, images: readonly FetchedImage[], moves: Moves): Promise<readonly FetchedImage[]> {
  for (const image of images) {
    const old = before.get(image.imageId);
    if (old) moves.image(old, 1);
  }
  const col = <T>(f: (i: FetchedImage) => T) => images.map(f);
  await db.query(
    `UPDATE images i SET state = 1, error_code = NULL, http_status = v.http_status, final_url = v.final_url, content_type = v.content_type,
       bytes = v.bytes, sha256 = v.sha256, width = v.width, height = v.height, received_format = v.received_format, file_index = v.file_index,
       attempts = i.attempts + 1, updated_at = herbdl_now(), next_attempt_at = NULL,
       etag = v.etag, last_modified = v.last_modified, stored_at = COALESCE(i.stored_at, herbdl_now()), confirmed_at = herbdl_now(), gone_at = NULL
     FROM unnest($1::bigint[], $2::int[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::int[], $8::int[], $9::text[], $10::int[], $11::text[], $12::text[])
       AS v(image_id, http_status, final_url, content_type, bytes, sha256, width, height, received_format, file_index, etag, last_modified)
     WHERE i.image_id = v.image_id`,
    [
      col((i) => i.imageId), col((i) => i.httpStatus), col((i) => i.finalUrl), col((i) => i.contentType), col((i) => i.bytes),
      col((i) => i.sha256), col((i) => i.width ?? null), col((i) => i.height ?? null), col((i) => i.receivedFormat ?? null), col((i) => i.fileIndex),
      col((i) => i.etag ?? null), col((i) => i.lastModified ?? null),
    ],
  );
  await db.query('DELETE FROM image_parts WHERE image_id = ANY($1::bigint[])', [col((i) => i.imageId)]);
  const parts = images.flatMap((i) => (i.parts ?? []).map((p) => ({ imageId: i.imageId, ...p })));
  if (parts.length > 0) {
    const pc = <T>(f: (p: (typeof parts)[number]) => T) => parts.map(f);
    await db.query(
      `INSERT INTO image_parts (image_id, part_index, file_index, url, http_status, final_url, content_type, bytes, width, height, sha256, received_format)
       SELECT * FROM unnest($1::bigint[], $2::int[], $3::int[], $4::text[], $5::int[], $6::text[], $7::text[], $8::bigint[], $9::int[], $10::int[], $11::text[], $12::text[])`,
      [
        pc((p) => p.imageId), pc((p) => p.partIndex), pc((p) => p.fileIndex), pc((p) => p.url), pc((p) => p.httpStatus), pc((p) => p.finalUrl),
        pc((p) => p.contentType), pc((p) => p.bytes), pc((p) => p.width ?? null), pc((p) => p.height ?? null), pc((p) => p.sha256), pc((p) => p.receivedFormat ?? null),
      ],
    );
  }
  return images;
}

/** Images stored while their gbifIDs stay pending and claimed (adopt's flat layout); fenced like every outcome. */
export async function recordStored(db: pg.PoolClient, me: number, stored: readonly { gbifId: number; images: readonly FetchedImage[] }[]): Promise<void> {
  const ids = stored.map((d) => d.gbifId);
  const moves = new Moves();
  await fence(db, me, ids);
  await recordImages(db, await imageStates(db, ids), stored.flatMap((d) => d.images), moves);
  await moves.write(db);
}

/**
 * Each gbifID done with its images, or, if it has gained an image since this
 * worker claimed it (an ingest beside the run), its images recorded and
 * itself pending again, let go, as an ingest reopens a done one. The fence's
 * row lock orders this with such an ingest (ingest-merge.ts): the ingest
 * reopens the gbifID only after this has committed, or this reads its images
 * only after the ingest has. Returns the images (and IIIF parts) recorded,
 * and the gbifIDs left pending.
 */
export async function recordDone(db: pg.PoolClient, me: number, done: readonly DoneId[]): Promise<{ images: number; unfinished: number[] }> {
  const ids = done.map((d) => d.gbifId);
  const moves = new Moves();
  const states = await fence(db, me, ids);
  const before = await imageStates(db, ids);
  const images = await recordImages(db, before, done.flatMap((d) => d.images), moves);
  const lacking = lackingAnImage(before, images);
  const complete = lacking.size === 0 ? ids : ids.filter((id) => !lacking.has(id));
  for (const id of complete) moves.id(states.get(id) as number, 1);
  await db.query(`UPDATE ids SET state = 1, next_attempt_at = NULL, updated_at = herbdl_now(), ${LET_GO} WHERE gbif_id = ANY($1::bigint[])`, [complete]);
  if (lacking.size > 0) {
    for (const id of lacking) moves.id(states.get(id) as number, 0);
    await db.query(`UPDATE ids SET state = 0, next_attempt_at = NULL, updated_at = herbdl_now(), ${LET_GO} WHERE gbif_id = ANY($1::bigint[])`, [[...lacking]]);
  }
  await db.query('DELETE FROM publishing WHERE gbif_id = ANY($1::bigint[])', [ids]);
  await releaseFetches(db, me, images.map((i) => i.imageId));
  await moves.write(db);
  await resetDerivatives(db, done);
  await countForWorker(db, me, 'done', complete.length);
  return { images: images.reduce((n, i) => n + Math.max(1, i.parts?.length ?? 0), 0), unfinished: [...lacking] };
}

export async function recordFailed(db: pg.PoolClient, me: number, all: readonly FailedId[]): Promise<void> {
  const states = await fence(db, me, all.map((f) => f.gbifId));
  // Excluded while this worker held them (herbdl exclude beside a run): they stay excluded, not failed; only the claim ends.
  const kept = all.filter((f) => states.get(f.gbifId) === STATE.excluded).map((f) => f.gbifId);
  if (kept.length > 0) await db.query(`UPDATE ids SET ${LET_GO} WHERE gbif_id = ANY($1::bigint[])`, [kept]);
  const failed = all.filter((f) => states.get(f.gbifId) !== STATE.excluded);
  if (failed.length === 0) return;
  const ids = failed.map((f) => f.gbifId);
  const moves = new Moves();
  for (const id of ids) moves.id(states.get(id) as number, 2);
  const before = await imageStates(db, ids);
  const rows = failed.flatMap((f) => f.failures.map((x) => ({ ...x, retryAt: f.retryAt })));
  for (const f of rows) {
    const old = before.get(f.imageId);
    if (!old) continue;
    moves.image(old, 2);
    moves.error(f.code, old.host_id, 1);
  }
  await db.query(
    `UPDATE images i SET state = 2, error_code = v.code, http_status = v.http_status, attempts = i.attempts + 1, updated_at = herbdl_now(), next_attempt_at = v.retry_at
     FROM unnest($1::bigint[], $2::text[], $3::int[], $4::bigint[]) AS v(image_id, code, http_status, retry_at) WHERE i.image_id = v.image_id`,
    [rows.map((f) => f.imageId), rows.map((f) => f.code), rows.map((f) => f.httpStatus ?? null), rows.map((f) => f.retryAt)],
  );
  await db.query(
    `UPDATE ids SET state = 2, attempts = ids.attempts + 1, next_attempt_at = v.retry_at, updated_at = herbdl_now(), ${LET_GO}
     FROM unnest($1::bigint[], $2::bigint[]) AS v(gbif_id, retry_at) WHERE ids.gbif_id = v.gbif_id`,
    [ids, failed.map((f) => f.retryAt)],
  );
  await moves.write(db);
  await countForWorker(db, me, 'failed', ids.length);
}
