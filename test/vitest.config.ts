import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    root: fileURLToPath(new URL('..', import.meta.url)),
    include: ['test/**/*.test.ts'],
    // A throwaway PostgreSQL server for the tests of the shared ledger (unless HERBDL_TEST_PG names one).
    globalSetup: ['test/global-setup.ts'],
    // Every PostgreSQL ledger a test file made has true counters when it ends.
    setupFiles: ['test/setup-counters.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // The CLI tests spawn real processes; the machines have two cores.
    maxWorkers: 2,
  },
});
