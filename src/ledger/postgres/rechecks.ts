/**
 * Rechecks on a shared ledger (see ../freshness.ts and sqlite/rechecks.ts).
 * A recheck's gbifIDs are claimed like a run's (worker_id, the worker's
 * lease): no two workers recheck, or republish, one gbifID at once.
 */
import type pg from 'pg';
import type { FreshnessSummary, HostRate, PlanRow, RecheckDue, RecheckImage, RecheckOutcome, Tier } from '../ledger.js';
import { FRESHNESS, isDue, planSql, RECHECKABLE } from '../freshness.js';
import { STATE } from '../rows.js';
import { FREE, HELD_BY, LET_GO } from './live.js';

export async function claimRecheck(pool: pg.Pool, me: number, tiers: readonly Tier[] | 'all', now: number, after: number, limit: number): Promise<{ last: number | undefined; due: RecheckDue[] }> {
  const claimed = await pool.query(
    `UPDATE ids SET worker_id = $1 FROM (SELECT gbif_id FROM ids WHERE state = ${STATE.done} AND gbif_id > $2 AND ${FREE} ORDER BY gbif_id LIMIT $3 FOR UPDATE SKIP LOCKED) c
     WHERE ids.gbif_id = c.gbif_id RETURNING ids.gbif_id`,
    [me, after, limit],
  );
  const ids = (claimed.rows.map((r) => r.gbif_id as number)).sort((a, b) => a - b);
  if (ids.length === 0) return { last: undefined, due: [] };
  // RECHECKABLE and isDue name the images' own columns unqualified: hosts has none of those names.
  const rows = await pool.query(
    `SELECT i.gbif_id, i.image_id, COALESCE(i.file_index, i.image_index) AS nn, i.url, h.host, i.sha256, i.bytes, i.etag, i.last_modified,
       array(SELECT d.width FROM derivatives d WHERE d.gbif_id = i.gbif_id ORDER BY d.width) AS widths
     FROM images i JOIN hosts h USING (host_id) WHERE i.gbif_id = ANY($1::bigint[]) AND ${RECHECKABLE} AND ${isDue(tiers, now)}
     ORDER BY i.gbif_id, i.image_index`,
    [ids],
  );
  const byId = new Map<number, { images: RecheckImage[]; widths: number[] }>();
  for (const r of rows.rows) {
    let entry = byId.get(r.gbif_id);
    if (!entry) byId.set(r.gbif_id, (entry = { images: [], widths: r.widths as number[] }));
    entry.images.push({ imageId: r.image_id, fileIndex: r.nn, url: r.url, host: r.host, sha256: r.sha256, bytes: r.bytes === null ? null : Number(r.bytes), ...(r.etag ? { etag: r.etag } : {}), ...(r.last_modified ? { lastModified: r.last_modified } : {}) });
  }
  // Nothing due: let go at once.
  const idle = ids.filter((id) => !byId.has(id));
  if (idle.length > 0) await pool.query(`UPDATE ids SET ${LET_GO} WHERE gbif_id = ANY($1::bigint[]) AND ${HELD_BY('worker_id', '$2')}`, [idle, me]);
  return { last: ids[ids.length - 1], due: [...byId].map(([gbifId, e]) => ({ gbifId, ...e })) };
}

/** In the caller's transaction: what the rechecks found; the gbifIDs' intents and claims end. */
export async function recordRechecked(db: pg.PoolClient, me: number, outcomes: readonly RecheckOutcome[]): Promise<void> {
  const confirmed = outcomes.flatMap((o) => o.confirmed);
  if (confirmed.length > 0) {
    await db.query(
      `UPDATE images i SET confirmed_at = herbdl_now(), etag = COALESCE(v.etag, i.etag), last_modified = COALESCE(v.lm, i.last_modified)
       FROM unnest($1::bigint[], $2::text[], $3::text[]) AS v(image_id, etag, lm) WHERE i.image_id = v.image_id`,
      [confirmed.map((c) => c.imageId), confirmed.map((c) => c.etag ?? null), confirmed.map((c) => c.lastModified ?? null)],
    );
  }
  const changed = outcomes.flatMap((o) => o.changed);
  if (changed.length > 0) {
    const col = <T>(f: (i: (typeof changed)[number]) => T) => changed.map(f);
    await db.query(
      `UPDATE images i SET http_status = v.http_status, final_url = v.final_url, content_type = v.content_type, bytes = v.bytes, sha256 = v.sha256,
         width = v.width, height = v.height, received_format = v.received_format, etag = v.etag, last_modified = v.lm,
         confirmed_at = herbdl_now(), updated_at = herbdl_now()
       FROM unnest($1::bigint[], $2::int[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::int[], $8::int[], $9::text[], $10::text[], $11::text[])
         AS v(image_id, http_status, final_url, content_type, bytes, sha256, width, height, received_format, etag, lm)
       WHERE i.image_id = v.image_id`,
      [
        col((i) => i.imageId), col((i) => i.httpStatus), col((i) => i.finalUrl), col((i) => i.contentType), col((i) => i.bytes), col((i) => i.sha256),
        col((i) => i.width ?? null), col((i) => i.height ?? null), col((i) => i.receivedFormat ?? null), col((i) => i.etag ?? null), col((i) => i.lastModified ?? null),
      ],
    );
  }
  const goneIds = outcomes.flatMap((o) => o.gone);
  const gone = goneIds.length === 0 ? 0 : (await db.query('UPDATE images SET gone_at = herbdl_now() WHERE image_id = ANY($1::bigint[]) AND gone_at IS NULL', [goneIds])).rowCount ?? 0;
  const gbifIds = outcomes.map((o) => o.gbifId);
  await db.query('DELETE FROM publishing WHERE gbif_id = ANY($1::bigint[]) AND worker_id = $2', [gbifIds, me]);
  const released = await db.query(`UPDATE ids SET ${LET_GO} WHERE gbif_id = ANY($1::bigint[]) AND ${HELD_BY('worker_id', '$2')} RETURNING gbif_id`, [gbifIds, me]);
  // Counted for the claims this transaction ends: sent again after a commit whose answer was lost (connect.ts: riding), it counts nothing twice.
  const ended = new Set(released.rows.map((r) => r.gbif_id as number));
  const changedCount = outcomes.reduce((n, o) => n + (ended.has(o.gbifId) ? o.changed.length : 0), 0);
  if (changedCount > 0) await db.query("UPDATE totals SET value = value + $1 WHERE name = 'images_changed'", [changedCount]);
  if (gone > 0) await db.query("UPDATE totals SET value = value + $1 WHERE name = 'images_gone'", [gone]);
}

export async function recordHostRates(pool: pg.Pool, rates: readonly HostRate[]): Promise<void> {
  if (rates.length === 0) return;
  const sorted = [...rates].sort((a, b) => (a.host < b.host ? -1 : 1));
  await pool.query(
    `UPDATE hosts h SET measured_images = h.measured_images + v.images, measured_ms = h.measured_ms + v.ms, measured_cap = v.cap
     FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::int[]) AS v(host, images, ms, cap) WHERE h.host = v.host`,
    [sorted.map((r) => r.host), sorted.map((r) => r.images), sorted.map((r) => Math.round(r.ms)), sorted.map((r) => r.cap)],
  );
}

export async function recordFreshness(pool: pg.Pool, summary: FreshnessSummary): Promise<void> {
  await pool.query('INSERT INTO herbdl_meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = excluded.value', [FRESHNESS, JSON.stringify(summary)]);
}

export async function plan(pool: pg.Pool, tiers: readonly Tier[], now: number): Promise<{ rows: PlanRow[]; rates: HostRate[] }> {
  const rows = await pool.query(planSql(tiers, now));
  const rates = await pool.query('SELECT host, measured_images AS images, measured_ms AS ms, measured_cap AS cap FROM hosts WHERE measured_images > 0');
  return {
    rows: rows.rows.map((r) => ({ host: r.host, tier: Number(r.tier), images: Number(r.images), due: Number(r.due) })),
    rates: rates.rows.map((r) => ({ host: r.host, images: Number(r.images), ms: Number(r.ms), cap: Number(r.cap) })),
  };
}
