/**
 * One fetch of a shared URL across workers. A URL that several pending
 * gbifIDs share (one image URL serves up to 72 in real downloads) may be
 * claimed by two workers at once, in different batches: each would fetch it.
 * So a claim takes a fetch lease on each such URL it is to fetch, one row in
 * url_fetches, in one statement per claim: whoever inserts the row fetches;
 * another worker's image of that URL waits for the stored copy
 * (ClaimedImage.elsewhere) and asks again, for all its waiting URLs in one
 * statement, at most once a second.
 *
 * A lease holds while its worker is live and still claims a pending gbifID
 * with a pending image of that URL (or took it under FRESH_MS ago): so a worker that died, stopped, set the
 * gbifID aside, handed it back or failed it lets the URL go with no sweep,
 * and the first to ask takes it over. A published gbifID's leases are
 * deleted with its outcome; a dead worker's stay until someone takes them.
 */
import type pg from 'pg';
import type { StoredCopy } from '../ledger.js';
import { urlHash } from '../../input/url-hash.js';
import { HELD_BY, LIVE } from './live.js';

/**
 * A lease this young holds while its worker is live, whatever its claims
 * look like: two workers claiming at the same moment each take leases in a
 * statement whose snapshot may predate the other's claim, and would take
 * the other's fresh lease over (in a test, one run in five fetched most
 * shared URLs twice).
 */
const FRESH_MS = 10_000;

/**
 * Inserts this worker's lease on each URL, or takes over one that no longer
 * holds (see above); returns the URLs whose lease is this worker's. Keys go
 * in sorted, so two workers taking overlapping sets never deadlock.
 */
async function takeFetches(pool: pg.Pool, me: number, urls: readonly string[]): Promise<Set<string>> {
  if (urls.length === 0) return new Set();
  const keys = [...new Set(urls)].map((url) => [urlHash(url), url] as const);
  const taken = await pool.query(
    `INSERT INTO url_fetches AS f (url_hash, url, worker_id, taken_at)
     SELECT h, u, $3, herbdl_now() FROM unnest($1::bigint[], $2::text[]) AS v(h, u) ORDER BY h, u
     ON CONFLICT (url_hash, url) DO UPDATE SET worker_id = excluded.worker_id, taken_at = excluded.taken_at
     WHERE f.worker_id = excluded.worker_id OR NOT ${LIVE('f.worker_id')} OR (f.taken_at < herbdl_now() - ${FRESH_MS} AND NOT EXISTS (
       SELECT 1 FROM images i JOIN ids d ON d.gbif_id = i.gbif_id
       WHERE i.url_hash = f.url_hash AND i.url = f.url AND i.state = 0 AND d.state = 0 AND ${HELD_BY('d.worker_id', 'f.worker_id')}))
     RETURNING url`,
    [keys.map((k) => k[0]), keys.map((k) => k[1]), me],
  );
  return new Set(taken.rows.map((r) => r.url as string));
}

/**
 * Takes the leases a claim needs: on those of `urls` (of images it may
 * fetch) that another pending gbifID shares. Returns the ones
 * another worker holds, whose images are to wait.
 */
export async function heldElsewhere(pool: pg.Pool, me: number, urls: readonly string[]): Promise<Set<string>> {
  const shared = await sharedUrls(pool, urls);
  const ours = await takeFetches(pool, me, shared);
  return new Set(shared.filter((url) => !ours.has(url)));
}

/** Of these URLs, those that another pending gbifID shares: only they need a lease. */
async function sharedUrls(pool: pg.Pool, urls: readonly string[]): Promise<string[]> {
  if (urls.length === 0) return [];
  const wanted = new Set(urls);
  const rows = await pool.query(
    `SELECT url FROM images WHERE url_hash = ANY($1::bigint[]) AND state IN (0, 2)
     GROUP BY url_hash, url HAVING count(DISTINCT gbif_id) > 1`,
    [[...new Set([...wanted].map(urlHash))]],
  );
  return rows.rows.map((r) => r.url as string).filter((url) => wanted.has(url));
}

/** What a worker waiting on URLs fetched elsewhere learns: a stored copy where one is done, 'ours' where the lease came to it. */
export async function fetchesElsewhere(
  pool: pg.Pool,
  me: number,
  urls: readonly string[],
  storedCopies: (urls: readonly string[]) => Promise<Map<string, StoredCopy[]>>,
): Promise<Map<string, StoredCopy | 'ours'>> {
  // The lease first, the copy after: a gbifID published between the two (its lease deleted with it) is found, not fetched again.
  const ours = await takeFetches(pool, me, urls);
  const stored = await storedCopies(urls);
  const answers = new Map<string, StoredCopy | 'ours'>();
  for (const url of urls) {
    const copy = stored.get(url)?.[0];
    if (copy) answers.set(url, copy);
    else if (ours.has(url)) answers.set(url, 'ours');
  }
  return answers;
}

/** Deletes this worker's leases on the URLs of images it has just published (in the caller's transaction). */
export async function releaseFetches(db: pg.PoolClient, me: number, imageIds: readonly number[]): Promise<void> {
  if (imageIds.length === 0) return;
  await db.query(
    `DELETE FROM url_fetches f USING images i
     WHERE i.image_id = ANY($1::bigint[]) AND f.url_hash = i.url_hash AND f.url = i.url AND f.worker_id = $2`,
    [imageIds, me],
  );
}
