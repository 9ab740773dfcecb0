/**
 * The downloader's prepared statements on a SQLite ledger (downloads.ts),
 * prepared once per run: claims, outcomes and their counters, intents,
 * breakers. Deferred IDs live in SQLite's temporary database (a file, with a
 * small cache of its own), for this run only.
 */
import type Database from 'better-sqlite3';
import { BLOCKED_LESS } from '../rows.js';
import { hasFile } from '../snapshots.js';
import { STATE } from './schema.js';

/**
 * blocked_host of a parked gbifID a take-up has claimed (claimBlocked): a claim on a SQLite ledger is only a
 * read, and this keeps the run's pass over the pending gbifIDs from claiming it a second time. Cleared by its
 * outcome, or parked behind a host again; one a run left (it stopped, or died) is let go when the next opens.
 */
export const TAKEN_UP = -1;

export function prepareDownloads(db: Database.Database) {
  db.exec('CREATE TEMP TABLE IF NOT EXISTS deferred_ids (seq INTEGER PRIMARY KEY, gbif_id INTEGER NOT NULL)');
  db.exec('DELETE FROM temp.deferred_ids');
  db.pragma('temp.cache_size = -2048');
  return {
    defer: db.prepare('INSERT INTO temp.deferred_ids(gbif_id) VALUES (?)'),
    deferred: db.prepare('SELECT seq, gbif_id FROM temp.deferred_ids ORDER BY seq LIMIT ?').raw(),
    undefer: db.prepare('DELETE FROM temp.deferred_ids WHERE seq <= ?'),
    // Parked gbifIDs (blocked_host) wait for their host: the walk passes them by without reading their images.
    pending: db.prepare(`SELECT gbif_id, attempts FROM ids WHERE gbif_id > ? AND state = ${STATE.pending} AND blocked_host IS NULL ORDER BY gbif_id LIMIT ?`).raw(),
    retryable: db
      .prepare(
        `SELECT gbif_id, attempts, next_attempt_at FROM ids
         WHERE state = ${STATE.failed} AND next_attempt_at <= :dueBy AND attempts < :maxAttempts AND blocked_host IS NULL
           AND (next_attempt_at > :at OR (next_attempt_at = :at AND gbif_id > :id))
         ORDER BY next_attempt_at, gbif_id LIMIT :limit`,
      )
      .raw(),
    // ids_blocked serves both: its condition repeated, a host's parked gbifIDs by key, and the hosts that have any.
    parked: db.prepare(`SELECT gbif_id, attempts, state, CASE WHEN state = ${STATE.failed} THEN next_attempt_at END FROM ids WHERE blocked_host = ? AND blocked_host IS NOT NULL AND state IN (0, 2) ORDER BY gbif_id LIMIT ?`).raw(),
    nextBlockedHost: db.prepare('SELECT blocked_host FROM ids WHERE blocked_host > ? AND blocked_host IS NOT NULL AND state IN (0, 2) ORDER BY blocked_host LIMIT 1').pluck(),
    park: db.prepare(`UPDATE ids SET blocked_host = ? WHERE gbif_id = ? AND state IN (${STATE.pending}, ${STATE.failed}) RETURNING state`).pluck(),
    holdTakenUp: db.prepare(`UPDATE ids SET blocked_host = ${TAKEN_UP} WHERE gbif_id = ?`),
    letGo: db.prepare(`UPDATE ids SET blocked_host = NULL WHERE gbif_id = ? AND blocked_host = ${TAKEN_UP}`),
    letGoAll: db.prepare(`UPDATE ids SET blocked_host = NULL WHERE blocked_host = ${TAKEN_UP} AND state IN (0, 2)`),
    blockedMore: db.prepare('UPDATE hosts SET blocked_ids = COALESCE(blocked_ids, 0) + ? WHERE host_id = ?'),
    blockedLess: db.prepare(`UPDATE hosts SET blocked_ids = ${BLOCKED_LESS(':n')} WHERE host_id = :hostId`),
    hostBreaker: db.prepare('SELECT host, breaker_open_until FROM hosts WHERE host_id = ?').raw(),
    // An ID claimed again: its attempts, and when it was due if it is failed (claimed for its retry).
    idAgain: db.prepare(`SELECT attempts, CASE WHEN state = ${STATE.failed} THEN next_attempt_at END FROM ids WHERE gbif_id = ?`).raw(),
    images: db
      .prepare('SELECT i.image_id, i.image_index, i.url, h.host, i.state FROM images i JOIN hosts h USING (host_id) WHERE i.gbif_id = ? ORDER BY i.image_index')
      .raw(),
    storedFiles: db
      .prepare(
        `SELECT COALESCE(file_index, image_index) FROM images WHERE gbif_id = :id AND ${hasFile()} AND (received_format IS NULL OR received_format NOT LIKE 'iiif%')
         UNION SELECT p.file_index FROM image_parts p JOIN images i USING (image_id) WHERE i.gbif_id = :id AND ${hasFile('i')}`,
      )
      .pluck(),
    imageStates: db.prepare('SELECT image_id, state, error_code, host_id FROM images WHERE gbif_id = ?').raw(),
    idState: db.prepare('SELECT state FROM ids WHERE gbif_id = ?').pluck(),
    claimable: db.prepare(`SELECT attempts, state, blocked_host AS blockedHost FROM ids WHERE gbif_id = ? AND state IN (${STATE.pending}, ${STATE.failed})`),
    unpark: db.prepare('UPDATE ids SET blocked_host = NULL WHERE gbif_id = ?'),
    imageDone: db.prepare(
      `UPDATE images SET state = ${STATE.done}, error_code = NULL, http_status = ?, final_url = ?, content_type = ?, bytes = ?, sha256 = ?,
         width = ?, height = ?, received_format = ?, file_index = ?, attempts = attempts + 1, updated_at = ?, next_attempt_at = NULL,
         etag = ?, last_modified = ?, stored_at = COALESCE(stored_at, ?), confirmed_at = ?, gone_at = NULL WHERE image_id = ?`,
    ),
    clearParts: db.prepare('DELETE FROM image_parts WHERE image_id = ?'),
    part: db.prepare(
      `INSERT INTO image_parts(image_id, part_index, file_index, url, http_status, final_url, content_type, bytes, width, height, sha256, received_format)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ),
    imageFailed: db.prepare(
      `UPDATE images SET state = ${STATE.failed}, error_code = ?, http_status = ?, attempts = attempts + 1, updated_at = ?, next_attempt_at = ? WHERE image_id = ?`,
    ),
    // A gbifID whose images were all done but one added since its claim: pending, as an ingest reopens a done one.
    idPending: db.prepare(`UPDATE ids SET state = ${STATE.pending}, next_attempt_at = NULL, updated_at = ?, blocked_host = NULL WHERE gbif_id = ?`),
    idDone: db.prepare(`UPDATE ids SET state = ${STATE.done}, next_attempt_at = NULL, updated_at = ?, blocked_host = NULL WHERE gbif_id = ?`),
    idFailed: db.prepare(`UPDATE ids SET state = ${STATE.failed}, attempts = attempts + 1, next_attempt_at = ?, updated_at = ?, blocked_host = NULL WHERE gbif_id = ?`),
    hostMove: db.prepare('UPDATE hosts SET pending = pending + ?, done = done + ?, failed = failed + ? WHERE host_id = ?'),
    hostId: db.prepare('SELECT host_id FROM hosts WHERE host = ?').pluck(),
    errorCount: db.prepare('INSERT INTO error_counts(code, host_id, images) VALUES (?, ?, ?) ON CONFLICT (code, host_id) DO UPDATE SET images = images + excluded.images'),
    total: db.prepare('UPDATE totals SET value = value + ? WHERE name = ?'),
    intent: db.prepare('INSERT OR REPLACE INTO publishing(gbif_id, paths) VALUES (?, ?)'),
    clearIntent: db.prepare('DELETE FROM publishing WHERE gbif_id = ?'),
    intents: db.prepare('SELECT gbif_id, paths FROM publishing').raw(),
  };
}

export type DownloadStatements = ReturnType<typeof prepareDownloads>;
