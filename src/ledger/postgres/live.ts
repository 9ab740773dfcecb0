/** Whether a worker's lease holds, as SQL: the condition claims, host slots and fetch leases share. */

/** True when the worker named by `column` holds a live lease (qualify the column: inside, `worker_id` is the worker's own). */
export const LIVE = (column: string) => `EXISTS (SELECT 1 FROM workers w WHERE w.worker_id = ${column} AND w.lease_until > herbdl_now())`;

/** A gbifID that no live worker holds: the condition every claim adds. */
export const FREE = `(ids.worker_id IS NULL OR NOT ${LIVE('ids.worker_id')})`;
