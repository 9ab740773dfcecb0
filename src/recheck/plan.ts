/**
 * `herbdl recheck --plan`: how long a full round of re-checking takes at
 * each host's polite rate, planned as Openverse plans its reingestion: per
 * tier, how many images fall due per day; per host, what falls due there
 * per day against what its measured rate (images per second at its
 * politeness cap, from past runs) re-checks in a day, so how many days of
 * records one day of work covers. Hosts that cannot keep up come first,
 * with how far behind they fall each day.
 */
import type { HostRate, PlanRow, Tier } from '../ledger/ledger.js';

const DAY_MS = 86_400_000;

export interface TierPlan {
  readonly tier: number;
  readonly everyDays: number;
  /** Images younger than this (Infinity: no end). */
  readonly untilDays: number | null;
  readonly images: number;
  readonly dueNow: number;
  readonly duePerDay: number;
}

export interface HostPlan {
  readonly host: string;
  readonly images: number;
  readonly dueNow: number;
  readonly duePerDay: number;
  /** Images a second at its politeness cap, measured in past runs (null: never measured). */
  readonly rate: number | null;
  readonly perDay: number | null;
  /** Days of what falls due that one day of work re-checks (>= 1 keeps up). */
  readonly daysPerDay: number | null;
  readonly keepsUp: boolean | null;
  /** Images a day it falls behind by (0 when it keeps up). */
  readonly behindPerDay: number;
  /** Days to re-check what is due now, at its rate. */
  readonly daysForDueNow: number | null;
}

export interface Plan {
  readonly at: number;
  readonly tiers: readonly TierPlan[];
  readonly hosts: readonly HostPlan[];
  readonly images: number;
  readonly dueNow: number;
}

export function makePlan(tiers: readonly Tier[], rows: readonly PlanRow[], rates: readonly HostRate[], at: number): Plan {
  const everyDays = (t: number) => (tiers[t] as Tier).everyMs / DAY_MS;
  const tierPlans: TierPlan[] = tiers.map((t, i) => {
    const mine = rows.filter((r) => r.tier === i);
    const images = mine.reduce((n, r) => n + r.images, 0);
    return { tier: i, everyDays: everyDays(i), untilDays: Number.isFinite(t.untilMs) ? t.untilMs / DAY_MS : null, images, dueNow: mine.reduce((n, r) => n + r.due, 0), duePerDay: images / everyDays(i) };
  });
  const byHost = new Map<string, { images: number; dueNow: number; duePerDay: number }>();
  for (const r of rows) {
    const h = byHost.get(r.host) ?? { images: 0, dueNow: 0, duePerDay: 0 };
    byHost.set(r.host, { images: h.images + r.images, dueNow: h.dueNow + r.due, duePerDay: h.duePerDay + r.images / everyDays(r.tier) });
  }
  const rateOf = new Map(rates.map((r) => [r.host, r.ms > 0 ? (r.cap * r.images) / (r.ms / 1000) : null]));
  const hosts: HostPlan[] = [...byHost].map(([host, h]) => {
    const rate = rateOf.get(host) ?? null;
    const perDay = rate === null ? null : rate * 86_400;
    const daysPerDay = perDay === null || h.duePerDay === 0 ? null : perDay / h.duePerDay;
    return {
      host,
      ...h,
      rate,
      perDay,
      daysPerDay,
      keepsUp: perDay === null ? null : perDay >= h.duePerDay,
      behindPerDay: perDay === null ? 0 : Math.max(0, h.duePerDay - perDay),
      daysForDueNow: perDay === null || perDay === 0 ? null : h.dueNow / perDay,
    };
  });
  // Those that cannot keep up first, furthest behind first; then unmeasured; then the rest, busiest first.
  const rank = (h: HostPlan) => (h.keepsUp === false ? 0 : h.keepsUp === null ? 1 : 2);
  hosts.sort((a, b) => rank(a) - rank(b) || b.behindPerDay - a.behindPerDay || b.duePerDay - a.duePerDay || (a.host < b.host ? -1 : 1));
  return { at, tiers: tierPlans, hosts, images: tierPlans.reduce((n, t) => n + t.images, 0), dueNow: tierPlans.reduce((n, t) => n + t.dueNow, 0) };
}
