/** Reading Parquet back with DuckDB: a reader that shares no code with herbdl's writer. */
import { DuckDBInstance } from '@duckdb/node-api';

/** The rows of `sql`, run on a fresh in-memory DuckDB. */
export async function duck(sql: string): Promise<Record<string, unknown>[]> {
  const instance = await DuckDBInstance.create(':memory:');
  const connection = await instance.connect();
  try {
    return (await connection.runAndReadAll(sql)).getRowObjectsJS() as Record<string, unknown>[];
  } finally {
    connection.closeSync();
    instance.closeSync();
  }
}
