/**
 * How a batch meets a big ledger. Ingest merges a second of rows at a time,
 * exclude a quarter of a million gbifIDs: a batch is small beside a ledger
 * of 50M gbifIDs, and each of its rows is best found by a probe of an index.
 * The planner priced a hash join over a scan of the whole table below those
 * probes (it takes images per gbifID from a sample, about ten times too
 * many, and the batch's temporary table has no statistics at all): at 20M
 * images, 12.8 s a batch for a merge that probes in 2.0 s, and a scan more
 * per statement as the ledger grows. JIT compiled each batch's statements
 * anew (about 0.1 s each). Both until the caller's transaction ends.
 */
import type pg from 'pg';

export async function probeByIndex(db: Pick<pg.PoolClient, 'query'>): Promise<void> {
  await db.query("SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off; SET LOCAL jit = off; SET LOCAL work_mem = '64MB'");
}
