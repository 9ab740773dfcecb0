/**
 * Freshness, said the same way to both ledgers: which stored images are due
 * for a recheck, by age. An image's age runs from when it was first stored;
 * its tier (the first whose `until` it is younger than) says how often it is
 * re-checked; it is due once that long has passed since it was last
 * confirmed. Images stored before these columns existed count from their
 * updated_at. Only plain images are re-checked (a IIIF document's canvases
 * are read again when its gbifID is reopened), and not those already gone.
 */
import { STATE } from './rows.js';

/** Re-check every `everyMs` while younger than `untilMs` (Infinity for the last tier). */
export interface Tier {
  readonly everyMs: number;
  readonly untilMs: number;
}

const DAY = 86_400_000;

/** Openverse-style default: weekly for the first month, monthly until six months, quarterly until two years, yearly after. */
export const DEFAULT_TIERS: readonly Tier[] = [
  { everyMs: 7 * DAY, untilMs: 30 * DAY },
  { everyMs: 30 * DAY, untilMs: 180 * DAY },
  { everyMs: 90 * DAY, untilMs: 730 * DAY },
  { everyMs: 365 * DAY, untilMs: Infinity },
];

/** A done, plain (not IIIF), not gone image of a done gbifID (columns of `images`, unqualified). */
export const RECHECKABLE = `state = ${STATE.done} AND (received_format IS NULL OR received_format NOT LIKE 'iiif%') AND gone_at IS NULL AND sha256 IS NOT NULL`;

const age = (now: number) => `(${now} - COALESCE(stored_at, updated_at, 0))`;
const since = (now: number) => `(${now} - COALESCE(confirmed_at, stored_at, updated_at, 0))`;

/** The tier an image is in, by age: 0, 1, ... (an SQL expression over `images`' columns). */
export function tierOf(tiers: readonly Tier[], now: number): string {
  const whens = tiers.slice(0, -1).map((t, i) => `WHEN ${age(now)} < ${t.untilMs} THEN ${i}`);
  return whens.length === 0 ? '0' : `CASE ${whens.join(' ')} ELSE ${tiers.length - 1} END`;
}

/** Whether an image is due now under `tiers` ('all': every image is). */
export function isDue(tiers: readonly Tier[] | 'all', now: number): string {
  if (tiers === 'all') return 'TRUE';
  const whens = tiers.slice(0, -1).map((t) => `WHEN ${age(now)} < ${t.untilMs} THEN ${t.everyMs}`);
  const every = whens.length === 0 ? `${tiers[0]?.everyMs ?? 0}` : `CASE ${whens.join(' ')} ELSE ${tiers[tiers.length - 1]?.everyMs ?? 0} END`;
  return `${since(now)} >= ${every}`;
}

/** Per host and tier: re-checkable images, and how many are due now (one GROUP BY over the images: for --plan and a recheck's summary). */
export function planSql(tiers: readonly Tier[], now: number): string {
  return `SELECT h.host, t.tier, count(*) AS images, sum(t.due) AS due
    FROM (SELECT host_id, ${tierOf(tiers, now)} AS tier, CASE WHEN ${isDue(tiers, now)} THEN 1 ELSE 0 END AS due FROM images WHERE ${RECHECKABLE}) t
    JOIN hosts h ON h.host_id = t.host_id GROUP BY h.host, t.tier`;
}

/** The flag (ledger_state, herbdl_meta) holding the last recheck's freshness summary, as JSON, for status. */
export const FRESHNESS = 'freshness';
