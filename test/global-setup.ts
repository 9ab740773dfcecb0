/**
 * Tests that need PostgreSQL read its URL from HERBDL_TEST_PG. When it is not
 * set, a throwaway cluster is started here for the run and stopped after it;
 * if that cannot be done the run fails: nothing is skipped.
 */
import { startCluster, type Cluster } from '../bench/pg-cluster.mjs';

let cluster: Cluster | undefined;

export async function setup(): Promise<void> {
  if (process.env.HERBDL_TEST_PG) return;
  cluster = await startCluster();
  process.env.HERBDL_TEST_PG = cluster.url;
}

export async function teardown(): Promise<void> {
  cluster?.stop();
}
