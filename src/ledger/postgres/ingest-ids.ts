/**
 * Host and attribution ids for ingest batches. The writer's connection is
 * busy with COPY, so these rows go through a side connection that does not
 * wait for the disk (a host or attribution row lost in a crash is made again
 * by the next ingest).
 *
 * A bulk load (into an empty ledger) owns both tables while it holds the
 * ingest lock: it numbers new hosts and attributions itself and sends their
 * rows without waiting for an answer, so the load never stops for a round
 * trip; they are in before the images that name them commit (settle()).
 * Past MAX_NUMBERED attributions, or in an incremental ingest, ids met before
 * come from a bounded memory and new ones are asked of the server, one
 * statement per batch.
 */
import type pg from 'pg';
import { unpackAttribution } from '../../input/rows.js';
import type { ImageBatch } from '../ledger.js';
import { SYNC_NUMBERED_SEQUENCES } from './schema.js';

/** A batch's host and attribution numbers resolved to ids (lists that grow while the numbering lasts). */
/**
 * Gives each of a batch's numbers (into `texts`) the id `known` has for its
 * text, or the next new one, noted in `known` and `into`; returns the new
 * (id, text) pairs, to be inserted.
 */
function assignIds(numbers: readonly number[], texts: readonly string[], known: Map<string, number>, next: () => number, into: number[]): [number, string][] {
  const added: [number, string][] = [];
  for (const n of numbers) {
    const text = texts[n] as string;
    let id = known.get(text);
    if (id === undefined) {
      id = next();
      known.set(text, id);
      added.push([id, text]);
    }
    into[n] = id;
  }
  return added;
}

export interface Numbered {
  readonly hostNames: readonly string[];
  readonly packedAttributions: readonly string[];
  readonly hosts: number[];
  readonly attributions: number[];
}

/** Attributions a bulk load numbers itself, remembering every one (about 250 bytes each with the map: 5 MB at most, for peak RSS). */
const MAX_NUMBERED = 20_000;
const MAX_CACHED_ATTRIBUTIONS = 50_000;

export class IngestIds {
  private readonly hostIds = new Map<string, number>();
  private readonly attributionIds = new Map<string, number>();
  /** Set while this ingest numbers new rows itself: the next free ids. */
  private numbering: { host: number; attribution: number } | undefined;
  /** Rows sent and not yet answered, in order; a failure is kept for settle(). */
  private sent: Promise<unknown> = Promise.resolve();
  private failure: unknown;

  private constructor(private readonly side: pg.PoolClient) {}

  static async open(side: pg.PoolClient, bulk: boolean): Promise<IngestIds> {
    const ids = new IngestIds(side);
    if (!bulk) return ids;
    // An empty ledger may still hold the hosts and attributions of an ingest that failed: they are known from the start.
    for (const r of (await side.query('SELECT host, host_id FROM hosts')).rows) ids.hostIds.set(r.host, r.host_id);
    const known = await side.query("SELECT attribution_id, concat_ws(chr(31), type, format, license, rights_holder, publisher) AS packed FROM attributions");
    if (known.rows.length < MAX_NUMBERED) {
      for (const r of known.rows) ids.attributionIds.set(r.packed, r.attribution_id);
      const max = await side.query('SELECT (SELECT coalesce(max(host_id), 0) FROM hosts) AS host, (SELECT coalesce(max(attribution_id), 0) FROM attributions) AS attribution');
      ids.numbering = { host: max.rows[0].host + 1, attribution: max.rows[0].attribution + 1 };
    }
    return ids;
  }

  async resolve(batch: ImageBatch, numbered: Numbered): Promise<void> {
    const newHosts = new Set<number>();
    const newAttributions = new Set<number>();
    for (let i = 0; i < batch.count; i++) {
      const h = batch.hosts[i] as number;
      if (numbered.hosts[h] === undefined) {
        const known = this.hostIds.get(batch.hostNames[h] as string);
        if (known === undefined) newHosts.add(h);
        else numbered.hosts[h] = known;
      }
      const a = batch.attributions[i] as number;
      if (numbered.attributions[a] === undefined) {
        const known = this.attributionIds.get(batch.packedAttributions[a] as string);
        if (known === undefined) newAttributions.add(a);
        else numbered.attributions[a] = known;
      }
    }
    if (newHosts.size === 0 && newAttributions.size === 0) return;
    if (this.numbering && this.attributionIds.size + newAttributions.size > MAX_NUMBERED) {
      // Too many to remember them all: from here on the server says which exist.
      await this.settle();
      this.numbering = undefined;
      this.attributionIds.clear();
    }
    if (this.numbering) return this.number(batch, numbered, [...newHosts], [...newAttributions]);
    if (newHosts.size > 0) await this.askHosts(batch, numbered, [...newHosts]);
    if (newAttributions.size > 0) await this.askAttributions(batch, numbered, [...newAttributions]);
  }

  /** Waits for the rows sent so far; throws what went wrong with any of them. */
  async settle(): Promise<void> {
    await this.sent;
    if (this.failure) throw this.failure;
  }

  /** Moves the tables' sequences past the ids this ingest gave. */
  async finish(): Promise<void> {
    await this.settle();
    for (const sync of SYNC_NUMBERED_SEQUENCES) await this.side.query(sync);
  }

  private send(text: string, values: unknown[]): void {
    this.sent = this.sent.then(() => this.side.query(text, values)).catch((err: unknown) => (this.failure ??= err));
  }

  /** Numbers new rows here (two numbers of a batch may name the same text: it gets one id) and sends them without waiting. */
  private number(batch: ImageBatch, numbered: Numbered, hosts: number[], attributions: number[]): void {
    const numbering = this.numbering as { host: number; attribution: number };
    const newHosts = assignIds(hosts, batch.hostNames, this.hostIds, () => numbering.host++, numbered.hosts);
    if (newHosts.length > 0) this.send('INSERT INTO hosts (host_id, host) SELECT * FROM unnest($1::int[], $2::text[])', [newHosts.map((h) => h[0]), newHosts.map((h) => h[1])]);
    const newAttributions = assignIds(attributions, batch.packedAttributions, this.attributionIds, () => numbering.attribution++, numbered.attributions);
    if (newAttributions.length > 0) {
      const unpacked = newAttributions.map(([, packed]) => unpackAttribution(packed));
      this.send(
        'INSERT INTO attributions (attribution_id, type, format, license, rights_holder, publisher) SELECT * FROM unnest($1::int[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[])',
        [newAttributions.map((a) => a[0]), unpacked.map((a) => a.type), unpacked.map((a) => a.format), unpacked.map((a) => a.license), unpacked.map((a) => a.rightsHolder), unpacked.map((a) => a.publisher)],
      );
    }
  }

  private async askHosts(batch: ImageBatch, numbered: Numbered, numbers: number[]): Promise<void> {
    const names = numbers.map((n) => batch.hostNames[n] as string);
    await this.side.query('INSERT INTO hosts (host) SELECT unnest($1::text[]) ORDER BY 1 ON CONFLICT (host) DO NOTHING', [names]);
    const rows = await this.side.query('SELECT host, host_id FROM hosts WHERE host = ANY($1::text[])', [names]);
    for (const r of rows.rows) this.hostIds.set(r.host as string, r.host_id as number);
    for (const n of numbers) numbered.hosts[n] = this.hostIds.get(batch.hostNames[n] as string) as number;
  }

  private async askAttributions(batch: ImageBatch, numbered: Numbered, numbers: number[]): Promise<void> {
    const unpacked = numbers.map((n) => unpackAttribution(batch.packedAttributions[n] as string));
    const columns = [unpacked.map((a) => a.type), unpacked.map((a) => a.format), unpacked.map((a) => a.license), unpacked.map((a) => a.rightsHolder), unpacked.map((a) => a.publisher)];
    await this.side.query(
      `INSERT INTO attributions (type, format, license, rights_holder, publisher)
       SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) ORDER BY 1, 2, 3, 4, 5 ON CONFLICT DO NOTHING`,
      columns,
    );
    const rows = await this.side.query(
      `SELECT a.attribution_id, u.n FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int[]) AS u(type, format, license, rights_holder, publisher, n)
       JOIN attributions a USING (type, format, license, rights_holder, publisher)`,
      [...columns, numbers],
    );
    if (this.attributionIds.size + rows.rows.length > MAX_CACHED_ATTRIBUTIONS) this.attributionIds.clear();
    for (const r of rows.rows) {
      numbered.attributions[r.n as number] = r.attribution_id as number;
      this.attributionIds.set(batch.packedAttributions[r.n as number] as string, r.attribution_id as number);
    }
  }
}
