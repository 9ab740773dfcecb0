/**
 * Per-host request slots shared by all workers (see HostBudgets in
 * ../ledger.ts). One exchange, about once a second per worker, for all the
 * hosts it has work for:
 *
 * 1. slots beyond `keep` go back (the worker stopped using them before it asked);
 * 2. its wants, and the 429 cooldowns it saw, are written;
 * 3. each host's slot rows exist (--per-host of them) and are read with who
 *    wants the host, and any cooldown or open breaker on it;
 * 4. free slots (no owner, or a dead worker's) are taken up to its fair share.
 *
 * A slot is taken by a conditional UPDATE, so two workers reaching for the
 * same one cannot both have it: the second's condition fails on the row the
 * first wrote. So at a host, all workers' requests never exceed --per-host.
 */
import type pg from 'pg';
import type { HostBudgets, HostDemand, HostNews } from '../ledger.js';
import { LIVE } from './live.js';
import { transaction } from './connect.js';


export class PostgresHostBudgets implements HostBudgets {
  private readonly hostIds = new Map<string, number>();
  /** Hosts whose slot rows this worker has seen made: they are never made again in this run. */
  private readonly slotted = new Set<number>();

  constructor(
    private readonly pool: pg.Pool,
    private readonly me: number,
  ) {}

  async exchange(perHost: number, demand: readonly HostDemand[]): Promise<Map<string, HostNews>> {
    const news = new Map<string, HostNews>();
    if (demand.length === 0) return news;
    await this.resolve(demand.map((d) => d.host));
    const ids = demand.map((d) => this.hostIds.get(d.host) as number);
    const byId = new Map(demand.map((d, i) => [ids[i] as number, d]));
    await this.makeSlots(ids, perHost);
    const owned = await transaction(this.pool, async (db) => {
      // 1. Give back slots beyond keep (highest numbers first), 2. wants and cooldowns.
      await db.query(
        `WITH mine AS (SELECT host_id, slot, row_number() OVER (PARTITION BY host_id ORDER BY slot) AS nth FROM host_slots WHERE worker_id = $1 AND host_id = ANY($2::int[]))
         UPDATE host_slots s SET worker_id = NULL FROM mine, unnest($2::int[], $3::int[]) AS k(host_id, keep)
         WHERE s.host_id = mine.host_id AND s.slot = mine.slot AND k.host_id = mine.host_id AND mine.nth > k.keep`,
        [this.me, ids, demand.map((d) => d.keep)],
      );
      await db.query('DELETE FROM host_wants WHERE worker_id = $1', [this.me]);
      await db.query('INSERT INTO host_wants (worker_id, host_id) SELECT $1, h FROM unnest($2::int[], $3::int[]) AS v(h, want) WHERE want > 0 ORDER BY h', [
        this.me,
        ids,
        demand.map((d) => d.want),
      ]);
      // In host order, as outcomes move host counters: two transactions never lock hosts crosswise.
      const cooled = demand.filter((d) => d.cooldownUntil !== undefined).sort((a, b) => (this.hostIds.get(a.host) as number) - (this.hostIds.get(b.host) as number));
      if (cooled.length > 0) {
        await db.query(
          'UPDATE hosts h SET cooldown_until = greatest(coalesce(h.cooldown_until, 0), v.until) FROM unnest($1::int[], $2::bigint[]) AS v(host_id, until) WHERE h.host_id = v.host_id',
          [cooled.map((d) => this.hostIds.get(d.host)), cooled.map((d) => d.cooldownUntil)],
        );
      }
      // 3. Who holds and who wants each host.
      const slots = await db.query(
        `SELECT hs.host_id, hs.slot, hs.worker_id = $1 AS mine, (hs.worker_id IS NULL OR NOT ${LIVE('hs.worker_id')}) AS free
         FROM host_slots hs WHERE hs.host_id = ANY($2::int[]) AND hs.slot < $3 ORDER BY hs.host_id, hs.slot`,
        [this.me, ids, perHost],
      );
      const wanting = await db.query(
        `SELECT host_id, count(*)::int AS n FROM host_wants hw WHERE host_id = ANY($1::int[]) AND ${LIVE('hw.worker_id')} GROUP BY host_id`,
        [ids],
      );
      const wants = new Map(wanting.rows.map((r) => [r.host_id as number, r.n as number]));
      // 4. Free slots, up to the fair share.
      const take: { host: number; slot: number }[] = [];
      const have = new Map<number, number>();
      const free = new Map<number, number[]>();
      for (const r of slots.rows) {
        if (r.mine) have.set(r.host_id, (have.get(r.host_id) ?? 0) + 1);
        else if (r.free) free.set(r.host_id, [...(free.get(r.host_id) ?? []), r.slot]);
      }
      for (const id of ids) {
        const d = byId.get(id) as HostDemand;
        const fair = Math.ceil(perHost / Math.max(1, wants.get(id) ?? 1));
        const room = Math.min(d.want, fair) - (have.get(id) ?? 0);
        for (const slot of (free.get(id) ?? []).slice(0, Math.max(0, room))) take.push({ host: id, slot });
        news.set(d.host, { slots: 0, fair });
      }
      if (take.length > 0) {
        // A slot another exchange has locked right now is skipped, not waited for: it may be free at the next one.
        const taken = await db.query(
          `UPDATE host_slots s SET worker_id = $1 FROM (
             SELECT hs.host_id, hs.slot FROM host_slots hs JOIN unnest($2::int[], $3::int[]) AS t(host_id, slot) ON hs.host_id = t.host_id AND hs.slot = t.slot
             WHERE hs.worker_id IS NULL OR NOT ${LIVE('hs.worker_id')} ORDER BY hs.host_id, hs.slot FOR UPDATE OF hs SKIP LOCKED) f
           WHERE s.host_id = f.host_id AND s.slot = f.slot RETURNING s.host_id`,
          [this.me, take.map((t) => t.host), take.map((t) => t.slot)],
        );
        for (const r of taken.rows) have.set(r.host_id, (have.get(r.host_id) ?? 0) + 1);
      }
      return have;
    });
    const held = await this.pool.query(
      `SELECT host_id, cooldown_until, breaker_open_until FROM hosts WHERE host_id = ANY($1::int[])
         AND (cooldown_until > herbdl_now() OR breaker_open_until > herbdl_now())`,
      [ids],
    );
    const heldById = new Map(held.rows.map((r) => [r.host_id as number, r]));
    for (const [i, id] of ids.entries()) {
      const host = (demand[i] as HostDemand).host;
      const h = heldById.get(id);
      news.set(host, {
        slots: owned.get(id) ?? 0,
        fair: news.get(host)?.fair ?? perHost,
        ...(h?.cooldown_until ? { cooldownUntil: h.cooldown_until as number } : {}),
        ...(h?.breaker_open_until ? { breakerOpenUntil: h.breaker_open_until as number } : {}),
      });
    }
    return news;
  }

  /**
   * Each host's --per-host slot rows, made once, on their own and before the
   * exchange's transaction. Inside it, ON CONFLICT on rows that other
   * exchanges were updating waited for those transactions, which waited in
   * turn: hundreds of deadlocks a run at four workers, each a second lost,
   * and exchanges that failed, leaving workers without slots (bench:scale
   * fell to 0.14-0.77 of four times one). Rows that exist are skipped by the
   * NOT EXISTS, read from the snapshot, so nothing waits on them.
   */
  private async makeSlots(ids: readonly number[], perHost: number): Promise<void> {
    const fresh = ids.filter((id) => !this.slotted.has(id));
    if (fresh.length === 0) return;
    await this.pool.query(
      `INSERT INTO host_slots (host_id, slot) SELECT h, s FROM unnest($1::int[]) AS h, generate_series(0, $2 - 1) AS s
       WHERE NOT EXISTS (SELECT 1 FROM host_slots x WHERE x.host_id = h AND x.slot = s) ORDER BY 1, 2 ON CONFLICT DO NOTHING`,
      [fresh, perHost],
    );
    for (const id of fresh) this.slotted.add(id);
  }

  /** Host ids by name, asked once per host per run. */
  private async resolve(hosts: readonly string[]): Promise<void> {
    const unknown = hosts.filter((h) => !this.hostIds.has(h));
    if (unknown.length === 0) return;
    const rows = await this.pool.query('SELECT host, host_id FROM hosts WHERE host = ANY($1::text[])', [unknown]);
    for (const r of rows.rows) this.hostIds.set(r.host, r.host_id);
  }
}
