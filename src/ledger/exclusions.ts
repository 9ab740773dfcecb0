/**
 * Exclusions, said the same way to both ledgers: gbifIDs another dataset
 * already holds (`herbdl exclude`, `ingest --exclude`). The IDs listed live in
 * the ledger's `exclusions` table, never in memory, so tens of millions cost
 * no RAM; every pending or failed gbifID among them is excluded (state 3):
 * never claimed, counted apart. A done gbifID stays done.
 *
 * The rule holds after every exclude and every ingest: an ingest may add IDs
 * that were listed before, so it applies the exclusions when it finishes (a
 * flag marks an ingest that died first; the next open applies them).
 */
import { BLOCKED_LESS, STATE, TOTAL_NAME } from './rows.js';

/** What one batch of listed IDs did. */
export interface ExcludeTally {
  /** IDs new to the exclusion list. */
  readonly listed: number;
  /** Pending or failed gbifIDs of the ledger taken out of the queue. */
  readonly excluded: number;
}

/** What one batch of IDs taken off the list did (`exclude --undo`). */
export interface UnexcludeTally {
  /** IDs that were on the exclusion list and are no more. */
  readonly unlisted: number;
  /** Excluded gbifIDs of the ledger put back in the queue, pending. */
  readonly restored: number;
}

/** The flag (ledger_state in SQLite, herbdl_meta in PostgreSQL) that is '0' while an ingest's new IDs may not have met the exclusions yet. */
export const EXCLUSIONS_APPLIED = 'exclusions_applied';

const MOVABLE = `(${STATE.pending}, ${STATE.failed})`;

/**
 * The images an exclusion moves, read once from the images table for the
 * counters and the move: a temporary table each ledger makes beside its
 * scope (image_id, host_id, state, error_code; SQLite's keyed by image_id),
 * left empty at the end.
 */
export const MOVING = 'exclude_images';

/**
 * How the images an exclusion moves are found to change them: by image_id
 * from MOVING (SQLite, where image_id is the table's own key), or again by
 * gbifID (PostgreSQL, where a bulk-loaded ledger has no index on image_id
 * until its first run, and a join on it would read the whole images table
 * for every batch).
 */
export type ImagesMoved = 'by_image_id' | 'by_gbif_id';

function moved(move: ImagesMoved, inScope: string, states: string): string {
  return move === 'by_image_id' ? `image_id IN (SELECT image_id FROM ${MOVING})` : `${inScope} AND state IN ${states}`;
}

/**
 * Statements that move the gbifIDs in table `scope` (each pending or failed)
 * to excluded, with every counter `status` reads, in one transaction of the
 * caller's. The same SQL serves SQLite and PostgreSQL. The images to move
 * are found once (the counters are read from them before they change): each
 * is a random read of the images table when the list overlaps the ledger
 * much, and for a quarter of a million gbifIDs three walks took 7.5 s, one
 * takes 5.0. `move` says how the images are then found to change (see
 * ImagesMoved).
 */
export function excludeStatements(scope: string, move: ImagesMoved): string[] {
  const inScope = `gbif_id IN (SELECT gbif_id FROM ${scope})`;
  return [
    `INSERT INTO ${MOVING} (image_id, host_id, state, error_code) SELECT image_id, host_id, state, error_code FROM images WHERE ${inScope} AND state IN ${MOVABLE}`,
    `UPDATE hosts SET pending = hosts.pending - c.p, failed = hosts.failed - c.f
     FROM (SELECT host_id, sum(CASE WHEN state = ${STATE.pending} THEN 1 ELSE 0 END) AS p, sum(CASE WHEN state = ${STATE.failed} THEN 1 ELSE 0 END) AS f
           FROM ${MOVING} GROUP BY host_id) AS c
     WHERE hosts.host_id = c.host_id`,
    // Parked behind a host's open breaker: no longer waiting for it (hosts.blocked_ids counts the pending ones).
    `UPDATE hosts SET blocked_ids = ${BLOCKED_LESS('c.n')}
     FROM (SELECT blocked_host AS host_id, count(*) AS n FROM ids WHERE ${inScope} AND state = ${STATE.pending} AND blocked_host > 0 GROUP BY blocked_host) AS c
     WHERE hosts.host_id = c.host_id`,
    `UPDATE error_counts SET images = error_counts.images - c.n
     FROM (SELECT host_id, error_code AS code, count(*) AS n FROM ${MOVING}
           WHERE state = ${STATE.failed} AND error_code IS NOT NULL GROUP BY host_id, error_code) AS c
     WHERE error_counts.host_id = c.host_id AND error_counts.code = c.code`,
    `UPDATE images SET state = ${STATE.excluded} WHERE ${moved(move, inScope, MOVABLE)}`,
    `DELETE FROM ${MOVING}`,
    ...[STATE.pending, STATE.failed].map(
      (state) => `UPDATE totals SET value = value - (SELECT count(*) FROM ids WHERE ${inScope} AND state = ${state}) WHERE name = '${TOTAL_NAME[state]}'`,
    ),
    `UPDATE totals SET value = value + (SELECT count(*) FROM ${scope}) WHERE name = '${TOTAL_NAME[STATE.excluded]}'`,
    `UPDATE ids SET state = ${STATE.excluded}, next_attempt_at = NULL, blocked_host = NULL WHERE ${inScope}`,
  ];
}

/**
 * Statements that put the excluded gbifIDs in table `scope` back in the
 * queue, pending, with their excluded images and every counter `status`
 * reads: what `exclude --undo` does once the IDs are off the list. An
 * exclusion does not keep which of its gbifIDs had failed, so all come back
 * pending, attempts and errors cleared, as retry-failed would have made the
 * failed ones: a run tries each again.
 */
export function restoreStatements(scope: string, move: ImagesMoved): string[] {
  const inScope = `gbif_id IN (SELECT gbif_id FROM ${scope})`;
  return [
    `INSERT INTO ${MOVING} (image_id, host_id, state, error_code) SELECT image_id, host_id, state, error_code FROM images WHERE ${inScope} AND state = ${STATE.excluded}`,
    `UPDATE hosts SET pending = hosts.pending + c.n FROM (SELECT host_id, count(*) AS n FROM ${MOVING} GROUP BY host_id) AS c WHERE hosts.host_id = c.host_id`,
    `UPDATE images SET state = ${STATE.pending}, error_code = NULL, next_attempt_at = NULL WHERE ${moved(move, inScope, `(${STATE.excluded})`)}`,
    `DELETE FROM ${MOVING}`,
    `UPDATE totals SET value = value + (SELECT count(*) FROM ${scope}) WHERE name = '${TOTAL_NAME[STATE.pending]}'`,
    `UPDATE totals SET value = value - (SELECT count(*) FROM ${scope}) WHERE name = '${TOTAL_NAME[STATE.excluded]}'`,
    // Parked behind no host (an exclusion made before exclusions unparked kept the mark): a run parks it again if its host is still down.
    `UPDATE ids SET state = ${STATE.pending}, attempts = 0, next_attempt_at = NULL, blocked_host = NULL WHERE ${inScope} AND state = ${STATE.excluded}`,
  ];
}

/** Fills `scope` with every listed gbifID that is pending or failed (after an ingest: IDs it added may be listed). */
export function listedMovableSql(scope: string): string {
  return `INSERT INTO ${scope} (gbif_id) SELECT i.gbif_id FROM exclusions e JOIN ids i ON i.gbif_id = e.gbif_id WHERE i.state IN ${MOVABLE}`;
}

export const MOVABLE_STATES = MOVABLE;
