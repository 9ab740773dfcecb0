/**
 * Rechecks in a SQLite ledger (see ../freshness.ts): which done images are
 * due, what a recheck found, each host's measured rate, and the freshness
 * summary status shows. record() runs inside the caller's transaction.
 */
import type Database from 'better-sqlite3';
import type { FreshnessSummary, HostRate, PlanRow, RecheckDue, RecheckImage, RecheckOutcome, Tier } from '../ledger.js';
import { FRESHNESS, isDue, planSql, RECHECKABLE } from '../freshness.js';
import { STATE } from './schema.js';
import { writeTransaction } from './write-transaction.js';

/** gbifID, image id, NN, URL, host, sha256, bytes (the stored file's), ETag, Last-Modified. */
type ImageRow = [number, number, number, string, string, string, number | null, string | null, string | null];

export class SqliteRechecks {
  private readonly stmt;
  private due: { readonly sql: string; readonly statement: Database.Statement } | undefined;

  constructor(private readonly db: Database.Database) {
    this.stmt = {
      doneAfter: db.prepare(`SELECT gbif_id FROM ids WHERE gbif_id > ? AND state = ${STATE.done} ORDER BY gbif_id LIMIT ?`).pluck(),
      widthsOf: db.prepare('SELECT width FROM derivatives WHERE gbif_id = ? ORDER BY width').pluck(),
      confirmed: db.prepare('UPDATE images SET confirmed_at = ?, etag = COALESCE(?, etag), last_modified = COALESCE(?, last_modified) WHERE image_id = ?'),
      changed: db.prepare(
        `UPDATE images SET http_status = ?, final_url = ?, content_type = ?, bytes = ?, sha256 = ?, width = ?, height = ?, received_format = ?,
           etag = ?, last_modified = ?, confirmed_at = ?, updated_at = ? WHERE image_id = ?`,
      ),
      gone: db.prepare('UPDATE images SET gone_at = ? WHERE image_id = ? AND gone_at IS NULL'),
      total: db.prepare('UPDATE totals SET value = value + ? WHERE name = ?'),
      rate: db.prepare('UPDATE hosts SET measured_images = measured_images + ?, measured_ms = measured_ms + ?, measured_cap = ? WHERE host = ?'),
      rates: db.prepare('SELECT host, measured_images AS images, measured_ms AS ms, measured_cap AS cap FROM hosts WHERE measured_images > 0'),
      keep: db.prepare('INSERT OR REPLACE INTO ledger_state(name, value) VALUES (?, ?)'),
    };
  }

  claim(tiers: readonly Tier[] | 'all', now: number, after: number, limit: number): { last: number | undefined; due: RecheckDue[] } {
    const ids = this.stmt.doneAfter.all(after, limit) as number[];
    if (ids.length === 0) return { last: undefined, due: [] };
    const rows = this.dueImages(tiers, now).all(after, ids[ids.length - 1]) as ImageRow[];
    const byId = new Map<number, RecheckImage[]>();
    for (const [gbifId, imageId, fileIndex, url, host, sha256, bytes, etag, lastModified] of rows) {
      let list = byId.get(gbifId);
      if (!list) byId.set(gbifId, (list = []));
      list.push({ imageId, fileIndex, url, host, sha256, bytes, ...(etag ? { etag } : {}), ...(lastModified ? { lastModified } : {}) });
    }
    const due = [...byId].map(([gbifId, images]) => ({ gbifId, images, widths: this.stmt.widthsOf.all(gbifId) as number[] }));
    return { last: ids[ids.length - 1], due };
  }

  /** The due images of a range of gbifIDs: one statement per recheck (its tiers and time are in its text), prepared once. */
  private dueImages(tiers: readonly Tier[] | 'all', now: number): Database.Statement {
    // RECHECKABLE and isDue name the images' own columns unqualified: hosts has none of those names.
    const sql = `SELECT i.gbif_id, i.image_id, COALESCE(i.file_index, i.image_index), i.url, h.host, i.sha256, i.bytes, i.etag, i.last_modified
       FROM images i JOIN hosts h USING (host_id)
       WHERE i.gbif_id IN (SELECT gbif_id FROM ids WHERE gbif_id > ? AND gbif_id <= ? AND state = ${STATE.done}) AND ${RECHECKABLE} AND ${isDue(tiers, now)}
       ORDER BY i.gbif_id, i.image_index`;
    if (this.due?.sql !== sql) this.due = { sql, statement: this.db.prepare(sql).raw() };
    return this.due.statement;
  }

  /** In the caller's transaction. */
  record(outcomes: readonly RecheckOutcome[], now: number): void {
    let changed = 0;
    let gone = 0;
    for (const o of outcomes) {
      for (const c of o.confirmed) this.stmt.confirmed.run(now, c.etag ?? null, c.lastModified ?? null, c.imageId);
      for (const i of o.changed) {
        this.stmt.changed.run(i.httpStatus, i.finalUrl, i.contentType, i.bytes, i.sha256, i.width ?? null, i.height ?? null, i.receivedFormat ?? null, i.etag ?? null, i.lastModified ?? null, now, now, i.imageId);
        changed++;
      }
      for (const id of o.gone) gone += this.stmt.gone.run(now, id).changes;
    }
    if (changed > 0) this.stmt.total.run(changed, 'images_changed');
    if (gone > 0) this.stmt.total.run(gone, 'images_gone');
  }

  hostRates(rates: readonly HostRate[]): void {
    writeTransaction(this.db, () => {
      for (const r of rates) this.stmt.rate.run(r.images, Math.round(r.ms), r.cap, r.host);
    });
  }

  keepFreshness(summary: FreshnessSummary): void {
    this.stmt.keep.run(FRESHNESS, JSON.stringify(summary));
  }

  plan(tiers: readonly Tier[], now: number): { rows: PlanRow[]; rates: HostRate[] } {
    return { rows: this.db.prepare(planSql(tiers, now)).all() as PlanRow[], rates: this.stmt.rates.all() as HostRate[] };
  }
}
