/**
 * When a test file ends, every PostgreSQL ledger it made has counters that
 * are those of its rows (helpers/counters.ts), whatever its tests did to it:
 * the shared ledger's side of what every SQLite `status` a test asks checks
 * (helpers/cli.ts).
 */
import { afterAll, expect } from 'vitest';
import { pgCounterDrift } from './helpers/counters.js';
import { databasesMade } from './helpers/postgres.js';

afterAll(async () => {
  for (const url of databasesMade()) {
    const drift = await pgCounterDrift(url, { whole: true }).catch((err: { code?: string }) => {
      // Dropped by its test (3D000: no such database), or a server the test stopped: nothing to recount.
      if (err.code === '3D000' || err.code === 'ECONNREFUSED' || err.code === '57P01') return [];
      throw err;
    });
    expect(drift, `the counters of ${url}`).toEqual([]);
  }
});
