/**
 * Labels on PostgreSQL (ledger/labels.ts says how a load works): COPYed into
 * labels_loading with their order in the file, a transaction a batch, each
 * checking the load's mark; at the end the last row of each gbifID becomes
 * the labels table (migration 11), keyed, in one transaction with the swap.
 */
import type pg from 'pg';
import { copyText, endCopy, startCopy } from './copy-text.js';
import { transaction } from './connect.js';
import { LABEL_FIELDS, LABELLED_IDS, LABELS_LOADING, loadMark, storedValues, takenOver, valuesOf, type LabelRow, type LabelSummary, type LabelWriter } from '../labels.js';

/** gbifIDs per page of labels read: pages walk the key, so memory stays flat. */
const PAGE = 5000;

export class PostgresLabelWriter implements LabelWriter {
  private seq = 0;

  private constructor(
    private readonly pool: pg.Pool,
    private readonly location: string,
    private readonly fields: readonly string[],
    private readonly token: string,
  ) {}

  static async open(pool: pg.Pool, location: string, fields: readonly string[]): Promise<PostgresLabelWriter> {
    const token = loadMark();
    await transaction(pool, async (db) => {
      // The mark first: it waits for a batch of a load under way (which holds it shared), whose next batch then sees this one's.
      await db.query('INSERT INTO herbdl_meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = excluded.value', [LABELS_LOADING, token]);
      // What a load killed half-way, or taken over, had loaded goes.
      await db.query('DROP TABLE IF EXISTS labels_loading');
      await db.query('CREATE TABLE labels_loading (seq bigint NOT NULL, gbif_id bigint NOT NULL, vals text NOT NULL)');
    });
    return new PostgresLabelWriter(pool, location, fields, token);
  }

  /** Within a transaction: the mark is still this load's (read with a lock, so a load that takes over waits for this batch). */
  private async ours(db: pg.PoolClient): Promise<void> {
    const mark = await db.query('SELECT value FROM herbdl_meta WHERE name = $1 FOR SHARE', [LABELS_LOADING]);
    if (mark.rows[0]?.value !== this.token) throw takenOver(this.location);
  }

  async add(rows: readonly LabelRow[]): Promise<void> {
    if (rows.length === 0) return;
    let text = '';
    for (const row of rows) text += `${this.seq++}\t${row.gbifId}\t${copyText(storedValues(row.values))}\n`;
    await transaction(this.pool, async (db) => {
      await this.ours(db);
      await endCopy(startCopy(db, 'COPY labels_loading (seq, gbif_id, vals) FROM STDIN'), text);
    });
  }

  async finish(): Promise<{ labelled: number }> {
    return transaction(this.pool, async (db) => {
      await this.ours(db);
      // Keeping each gbifID's last row sorts the whole load: in memory up to a point, not in a few MB of temporary files at a time.
      await db.query("SET LOCAL work_mem = '256MB'");
      await db.query('TRUNCATE labels');
      await db.query('INSERT INTO labels (gbif_id, vals) SELECT DISTINCT ON (gbif_id) gbif_id, vals FROM labels_loading ORDER BY gbif_id, seq DESC');
      await db.query('DROP TABLE labels_loading');
      await db.query('ANALYZE labels');
      const labelled = Number((await db.query('SELECT count(*)::bigint AS n FROM ids JOIN labels USING (gbif_id)')).rows[0].n);
      const set = 'INSERT INTO herbdl_meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = excluded.value';
      await db.query(set, [LABEL_FIELDS, JSON.stringify(this.fields)]);
      await db.query(set, [LABELLED_IDS, String(labelled)]);
      await db.query('DELETE FROM herbdl_meta WHERE name = $1', [LABELS_LOADING]);
      return { labelled };
    });
  }

  async close(): Promise<void> {}
}

export async function labelSummary(db: pg.Pool | pg.PoolClient): Promise<LabelSummary | undefined> {
  const { rows } = await db.query('SELECT name, value FROM herbdl_meta WHERE name = ANY($1::text[])', [[LABEL_FIELDS, LABELLED_IDS]]);
  const value = (name: string) => rows.find((r) => r.name === name)?.value as string | undefined;
  const fields = value(LABEL_FIELDS);
  if (fields === undefined) return undefined;
  return { fields: JSON.parse(fields) as string[], ids: Number(value(LABELLED_IDS) ?? 0) };
}

export async function* labelRows(pool: pg.Pool): AsyncGenerator<LabelRow> {
  let after = -1;
  for (;;) {
    const { rows } = await pool.query('SELECT gbif_id, vals FROM labels WHERE gbif_id > $1 ORDER BY gbif_id LIMIT $2', [after, PAGE]);
    for (const r of rows) yield { gbifId: Number(r.gbif_id), values: valuesOf(r.vals as string) };
    if (rows.length < PAGE) return;
    after = Number(rows[rows.length - 1].gbif_id);
  }
}
