/**
 * Snapshots, said the same way to both ledgers: `ingest --snapshot newer.zip`
 * takes the file as the complete current state of the same query. Every image
 * it lists is marked as the rows go in (listed-images.ts, a bit per image in
 * memory); when the file has been read whole, the images it did not mark go
 * into a work table, and the images among them still live are removed (state
 * 4), with every counter.
 *
 * A gbifID left with no image is removed too (its files stay until `herbdl
 * prune`). One that lost some images but keeps others has a new set: a done
 * or failed one becomes pending, so the next run publishes the new set whole
 * (and removes the files of the images that went, under the same intent).
 * Nothing is removed until the whole file is in: a snapshot ingest killed
 * half-way has only added rows, and running it again lists from the start.
 * (Each listed image used to be stamped in images.snapshot, SQLite's
 * migration 9 and PostgreSQL's 4; the column stays, no longer written.)
 */
import { BLOCKED_LESS, IMAGES_REMOVED, STATE, TOTAL_NAME } from './rows.js';

/** The flag (ledger_state in SQLite, herbdl_meta in PostgreSQL) holding the number of the last snapshot applied. */
export const SNAPSHOT_NUMBER = 'snapshot';

const GONE = 'snapshot_gone';
/** The work table of image ids a snapshot did not mark (one column, image_id), filled by each ledger before the removal. */
export const UNLISTED = 'snapshot_unlisted';
const TOUCHED = 'snapshot_ids';
const REMOVED = STATE.removed;

/** A removal in two steps: `read` makes and fills the work tables (nothing changes yet), `change` applies it. */
export interface RemovalSteps {
  readonly read: readonly string[];
  readonly change: readonly string[];
}

/**
 * After a removal's `read` step: the images a snapshot is about to remove,
 * and the images the ledger has (its hosts' counters: no scan). One row.
 */
export const REMOVING_SQL = `SELECT (SELECT count(*) FROM ${GONE}) AS removing, (SELECT coalesce(sum(images), 0) FROM hosts) AS images`;

/**
 * Statements, for one transaction of the caller's, that remove the live
 * images among those a snapshot did not list (the UNLISTED work table). The
 * same SQL serves SQLite and PostgreSQL. Order: what goes and which gbifIDs
 * it empties are read first; then ids, images, and the counters (hosts, error
 * counts, totals), the order a worker's outcomes take their locks in on a
 * shared ledger.
 */
export function removeUnlistedSteps(): RemovalSteps {
  return removeSteps(`SELECT image_id, gbif_id, host_id, state, error_code FROM images WHERE image_id IN (SELECT image_id FROM ${UNLISTED}) AND state <> ${REMOVED}`, true);
}

/**
 * Statements that remove the images `select` picks (rows: image_id, gbif_id,
 * host_id, state, error_code), with every counter; a gbifID left with none is
 * removed. `reopen`: a done or failed gbifID that keeps others has a new set,
 * and becomes pending (a snapshot); else it stays as it is (prune of images
 * gone at the source: the files left are its set).
 */
export function removeStatements(select: string, reopen: boolean): string[] {
  const { read, change } = removeSteps(select, reopen);
  return [...read, ...change];
}

function removeSteps(select: string, reopen: boolean): RemovalSteps {
  const liveImage = `i.gbif_id = g.gbif_id AND i.state <> ${REMOVED} AND i.image_id NOT IN (SELECT image_id FROM ${GONE})`;
  const idTotals = (states: readonly number[], emptied: boolean, sign: '+' | '-') =>
    states.map(
      (s) => `UPDATE totals SET value = value ${sign} (SELECT count(*) FROM ${TOUCHED} WHERE state = ${s} AND ${emptied ? '' : 'NOT '}emptied) WHERE name = '${TOTAL_NAME[s]}'`,
    );
  const read = [
    `DROP TABLE IF EXISTS ${GONE}`,
    `DROP TABLE IF EXISTS ${TOUCHED}`,
    `CREATE TEMP TABLE ${GONE} AS ${select}`,
    `CREATE TEMP TABLE ${TOUCHED} AS SELECT g.gbif_id, ids.state, ids.blocked_host, NOT EXISTS (SELECT 1 FROM images i WHERE ${liveImage}) AS emptied
       FROM (SELECT DISTINCT gbif_id FROM ${GONE}) g JOIN ids ON ids.gbif_id = g.gbif_id`,
  ];
  const change = [
    // gbifIDs with no image left: removed, whatever they were, and no longer parked behind a host (hosts.blocked_ids below).
    `UPDATE ids SET state = ${REMOVED}, next_attempt_at = NULL, blocked_host = NULL WHERE gbif_id IN (SELECT gbif_id FROM ${TOUCHED} WHERE emptied)`,
    // A done or failed gbifID whose set shrank: pending, for its new set (a failed one parked for its retry, unparked).
    ...(reopen
      ? [`UPDATE ids SET state = ${STATE.pending}, next_attempt_at = NULL, blocked_host = NULL
           WHERE gbif_id IN (SELECT gbif_id FROM ${TOUCHED} WHERE NOT emptied AND state IN (${STATE.done}, ${STATE.failed}))`]
      : []),
    `UPDATE images SET state = ${REMOVED}, next_attempt_at = NULL WHERE image_id IN (SELECT image_id FROM ${GONE})`,
    // Hosts count an image in `images` and in its state's column (an excluded one in `images` only).
    `UPDATE hosts SET images = hosts.images - c.n, pending = hosts.pending - c.p, done = hosts.done - c.d, failed = hosts.failed - c.f
     FROM (SELECT host_id, count(*) AS n,
             sum(CASE WHEN state = ${STATE.pending} THEN 1 ELSE 0 END) AS p,
             sum(CASE WHEN state = ${STATE.done} THEN 1 ELSE 0 END) AS d,
             sum(CASE WHEN state = ${STATE.failed} THEN 1 ELSE 0 END) AS f
           FROM ${GONE} GROUP BY host_id) AS c
     WHERE hosts.host_id = c.host_id`,
    `UPDATE hosts SET blocked_ids = ${BLOCKED_LESS('c.n')}
     FROM (SELECT blocked_host AS host_id, count(*) AS n FROM ${TOUCHED} WHERE emptied AND state = ${STATE.pending} AND blocked_host > 0 GROUP BY blocked_host) AS c
     WHERE hosts.host_id = c.host_id`,
    `UPDATE error_counts SET images = error_counts.images - c.n
     FROM (SELECT host_id, error_code AS code, count(*) AS n FROM ${GONE}
           WHERE state = ${STATE.failed} AND error_code IS NOT NULL GROUP BY host_id, error_code) AS c
     WHERE error_counts.host_id = c.host_id AND error_counts.code = c.code`,
    `UPDATE totals SET value = value + (SELECT count(*) FROM ${GONE}) WHERE name = '${IMAGES_REMOVED}'`,
    ...idTotals([STATE.pending, STATE.done, STATE.failed, STATE.excluded], true, '-'),
    `UPDATE totals SET value = value + (SELECT count(*) FROM ${TOUCHED} WHERE emptied) WHERE name = '${TOTAL_NAME[REMOVED]}'`,
    ...(reopen
      ? [
          ...idTotals([STATE.done, STATE.failed], false, '-'),
          `UPDATE totals SET value = value + (SELECT count(*) FROM ${TOUCHED} WHERE NOT emptied AND state IN (${STATE.done}, ${STATE.failed})) WHERE name = '${TOTAL_NAME[STATE.pending]}'`,
        ]
      : []),
  ];
  return { read, change };
}

/**
 * An image whose file may be in the tree: done, or removed after it was
 * stored (its file stays until its gbifID is published anew, or pruned).
 */
export function hasFile(table = ''): string {
  const t = table ? `${table}.` : '';
  return `(${t}state = ${STATE.done} OR (${t}state = ${REMOVED} AND ${t}sha256 IS NOT NULL))`;
}

/** The select removeStatements takes for these images (ids are numbers from the ledger, inlined). */
export function imagesSelect(imageIds: readonly number[]): string {
  return `SELECT image_id, gbif_id, host_id, state, error_code FROM images WHERE image_id IN (${imageIds.map((id) => Math.trunc(id)).join(',')}) AND state <> ${REMOVED}`;
}

/** What the statements did: images and gbifIDs removed, and gbifIDs reopened for a shrunken set. One row of three numbers. */
export const REMOVED_COUNTS_SQL = `SELECT (SELECT count(*) FROM ${GONE}) AS images,
  (SELECT count(*) FROM ${TOUCHED} WHERE emptied) AS ids,
  (SELECT count(*) FROM ${TOUCHED} WHERE NOT emptied AND state IN (${STATE.done}, ${STATE.failed})) AS reopened`;

/** Drops the working tables (SQLite keeps temporary tables for the connection's life). */
export const DROP_WORK_TABLES = [`DROP TABLE IF EXISTS ${GONE}`, `DROP TABLE IF EXISTS ${TOUCHED}`, `DROP TABLE IF EXISTS ${UNLISTED}`];
