/** A database of its own for each test that needs PostgreSQL, on the server global-setup.ts provides. */
import { randomBytes } from 'node:crypto';
import pg from 'pg';

export function serverUrl(): string {
  const url = process.env.HERBDL_TEST_PG;
  if (!url) throw new Error('HERBDL_TEST_PG is not set: test/global-setup.ts starts a server for the run');
  return url;
}

/** The databases this test file made (setup-counters.ts recounts each when the file ends). */
const made: string[] = [];

export function databasesMade(): readonly string[] {
  return made;
}

/** Creates an empty database (on the suite's server, or on `server`) and returns its URL. */
export async function freshDatabase(label: string, server = serverUrl()): Promise<string> {
  const name = `herbdl_${label.replace(/[^a-z0-9]/gi, '_').toLowerCase()}_${randomBytes(4).toString('hex')}`;
  const client = new pg.Client({ connectionString: server });
  await client.connect();
  try {
    await client.query(`CREATE DATABASE ${name}`);
  } finally {
    await client.end();
  }
  const url = new URL(server);
  url.pathname = `/${name}`;
  made.push(url.toString());
  return url.toString();
}

/** Runs one query on a database and returns its rows. */
export async function query<T = Record<string, unknown>>(url: string, text: string, values: unknown[] = []): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query(text, values)).rows as T[];
  } finally {
    await client.end();
  }
}
