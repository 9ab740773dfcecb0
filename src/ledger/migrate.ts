/**
 * `herbdl migrate`: moves a SQLite ledger, with all its state (done and
 * failed images with their codes and attempts, IIIF parts, breakers, counters,
 * publishing intents), into an empty PostgreSQL database, so a user who
 * started on one machine carries on with many. Rows are streamed with COPY,
 * table by table, in one transaction: the target has all of it or none.
 * The source is held as a run holds it, so no run changes it meanwhile, and
 * read in one transaction, so what an ingest beside it commits is moved
 * whole or not at all (the next ingest into the target adds it).
 */
import { SNAPSHOT_NUMBER } from './snapshots.js';
import { FRESHNESS } from './freshness.js';
import { LAST_VERIFY } from './upkeep.js';
import { LABEL_FIELDS, LABELLED_IDS } from './labels.js';
import Database from 'better-sqlite3';
import { LedgerError } from '../errors.js';
import { openLedger } from './open.js';
import type pg from 'pg';
import { createPool, transaction } from './postgres/connect.js';
import { redact } from './postgres/server-url.js';
import { copyValue, endCopy, send, startCopy } from './postgres/copy-text.js';
import { analyzeLoaded } from './postgres/bulk-load.js';
import { DERIVED_INDEXES, SYNC_SEQUENCES } from './postgres/schema.js';

/** Tables in load order, with the columns both ledgers have. */
const TABLES: readonly { name: string; columns: readonly string[]; order: string }[] = [
  { name: 'hosts', columns: ['host_id', 'host', 'images', 'pending', 'done', 'failed', 'breaker_open_until', 'cooldown_until', 'blocked_ids', 'measured_images', 'measured_ms', 'measured_cap'], order: 'host_id' },
  { name: 'attributions', columns: ['attribution_id', 'type', 'format', 'license', 'rights_holder', 'publisher'], order: 'attribution_id' },
  {
    name: 'images',
    columns: ['image_id', 'gbif_id', 'image_index', 'url', 'url_hash', 'host_id', 'attribution_id', 'creator', 'state', 'error_code', 'http_status', 'attempts', 'next_attempt_at', 'updated_at', 'final_url', 'content_type', 'bytes', 'width', 'height', 'sha256', 'received_format', 'file_index', 'snapshot', 'etag', 'last_modified', 'stored_at', 'confirmed_at', 'gone_at'],
    order: 'image_id',
  },
  { name: 'image_parts', columns: ['image_id', 'part_index', 'file_index', 'url', 'http_status', 'final_url', 'content_type', 'bytes', 'width', 'height', 'sha256', 'received_format'], order: 'image_id, part_index' },
  { name: 'ids', columns: ['gbif_id', 'state', 'attempts', 'next_attempt_at', 'updated_at', 'blocked_host'], order: 'gbif_id' },
  { name: 'exclusions', columns: ['gbif_id'], order: 'gbif_id' },
  { name: 'derivatives', columns: ['gbif_id', 'width'], order: 'gbif_id, width' },
  { name: 'labels', columns: ['gbif_id', 'vals'], order: 'gbif_id' },
  { name: 'totals', columns: ['name', 'value'], order: 'name' },
  { name: 'error_counts', columns: ['code', 'host_id', 'images'], order: 'code, host_id' },
  // Intents of a run that died: worker 0 is no live worker, so the first worker to start undoes them.
  { name: 'publishing', columns: ['gbif_id', 'paths', '0 AS worker_id'], order: 'gbif_id' },
];

/** Streams one table's rows from the SQLite file into its PostgreSQL twin; returns how many. */
async function copyTable(db: Database.Database, client: pg.PoolClient, table: (typeof TABLES)[number]): Promise<number> {
  const names = table.columns.map((c) => c.replace(/^.* AS /, ''));
  const copy = startCopy(client, `COPY ${table.name} (${names.join(', ')}) FROM STDIN`);
  let text = '';
  let n = 0;
  for (const row of db.prepare(`SELECT ${table.columns.join(', ')} FROM ${table.name} ORDER BY ${table.order}`).raw().iterate() as IterableIterator<unknown[]>) {
    text += row.map(copyValue).join('\t') + '\n';
    n++;
    if (text.length > 1 << 20) {
      await send(copy, text);
      text = '';
    }
  }
  await endCopy(copy, text);
  return n;
}

const CARRIED_NOTES = [SNAPSHOT_NUMBER, FRESHNESS, LAST_VERIFY, LABEL_FIELDS, LABELLED_IDS];

export interface MigrateSummary {
  readonly rows: Readonly<Record<string, number>>;
}

export async function migrateLedger(from: string, to: string): Promise<MigrateSummary> {
  // Opening it as a run does: a newer or foreign file is refused, an unfinished bulk load completed, and no run may start meanwhile.
  const source = await openLedger(from, { create: false });
  const lock = await source.lockForRun({ leaseMs: 60_000 });
  try {
    await source.openDownloads(lock);
    const target = await openLedger(to, { create: true });
    const empty = await target.isEmpty();
    await target.close();
    if (!empty) throw new LedgerError(`${redact(to)}: already holds a ledger; migrate moves a ledger into an empty database`, 'ledger_not_empty');
    const db = new Database(source.location, { readonly: true, fileMustExist: true });
    // Every table read at one moment of the file: an ingest, an exclude or a labels load may commit beside the
    // migrate (they may beside a run). Read table by table, the copy had, after an ingest committed between the
    // images and the gbifIDs, gbifIDs without an image, counted pending. Ended by close() below.
    db.exec('BEGIN');
    const pool = createPool(to, 1);
    const rows: Record<string, number> = {};
    try {
      await transaction(pool, async (client) => {
        for (const index of Object.keys(DERIVED_INDEXES)) await client.query(`DROP INDEX IF EXISTS ${index}`);
        await client.query('DELETE FROM totals');
        for (const table of TABLES) rows[table.name] = await copyTable(db, client, table);
        // The ledger's own notes that carry state: the last snapshot's number, the last recheck's freshness, the label fields.
        for (const name of CARRIED_NOTES) {
          const value = db.prepare('SELECT value FROM ledger_state WHERE name = ?').pluck().get(name) as string | undefined;
          if (value !== undefined) await client.query('INSERT INTO herbdl_meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = excluded.value', [name, value]);
        }
        for (const create of Object.values(DERIVED_INDEXES)) await client.query(create);
        for (const sync of SYNC_SEQUENCES) await client.query(sync);
        await analyzeLoaded(client);
      });
    } finally {
      await pool.end();
      db.close();
    }
    return { rows };
  } finally {
    await lock.release();
    await source.close();
  }
}
