/**
 * What workers sharing a ledger say to each other about hosts, so all of
 * them together keep to --per-host (the PostgreSQL ledger's
 * postgres/host-budgets.ts; a ledger one run holds has none).
 */

/** What a worker has for a host now: requests it would send (in flight and waiting, at most --per-host). */
export interface HostDemand {
  readonly host: string;
  readonly want: number;
  /** Slots it will keep: it has already stopped starting requests beyond these (never below its requests in flight). */
  readonly keep: number;
  /** Set when the worker saw the host say slow down (429, Retry-After): no worker asks it before then. */
  readonly cooldownUntil?: number;
}

/** What the other workers' share of the ledger says about a host. */
export interface HostNews {
  /** Request slots this worker owns there now. */
  readonly slots: number;
  /** Its fair share: --per-host over the workers with work waiting for it. */
  readonly fair: number;
  readonly cooldownUntil?: number;
  readonly breakerOpenUntil?: number;
}

/**
 * Per-host request slots shared by every worker of a ledger. A worker sends
 * to a host only as many requests at once as it owns slots there; it gives
 * back what it does not need, keeps its fair share while others wait, and
 * takes free slots (or a dead worker's) in each exchange, once a second, in a
 * handful of statements for all its hosts. A 429 or an open breaker that one
 * worker saw reaches the others in the same exchange.
 */
export interface HostBudgets {
  exchange(perHost: number, demand: readonly HostDemand[]): Promise<Map<string, HostNews>>;
}
