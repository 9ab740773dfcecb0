/** Exponential backoff with jitter, as curl and most crawlers do it. */

/** Delay before retry number `attempt` (1-based): base * 2^(attempt-1), capped, jittered to 50-100%. */
export function backoffMs(attempt: number, baseMs: number, capMs: number, random: () => number = Math.random): number {
  const full = Math.min(capMs, baseMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(full * (0.5 + random() * 0.5));
}
