/** What a run's scheduler is told: where to store, how hard to push, how to fetch and check. */
import type { FetchSettings } from '../fetch/fetch-image.js';
import type { ValidatedImage } from '../validate/validate-image.js';
import type { DeriveSettings } from './job.js';

export interface SchedulerSettings {
  readonly out: string;
  /** This run's own folder of temporaries (inside out). */
  readonly temps: string;
  readonly concurrency: number;
  readonly perHost: number;
  readonly retries: number;
  readonly breakerThreshold: number;
  readonly breakerCooldownMs: number;
  readonly breakerWindowMs: number;
  readonly maxAttempts: number;
  /** Stop after this many gbifIDs (0: no limit). */
  readonly limit: number;
  readonly fetch: FetchSettings;
  /**
   * Decodes (and, where needed, converts) a fetched body, and leaves what is
   * to be stored at the path: a body given in memory is written there.
   * Throws a PermanentError when it is no usable image.
   */
  readonly validate: (path: string, body?: Buffer) => Promise<ValidatedImage>;
  /** Derivatives to publish with every gbifID (run --derive). */
  readonly derive?: DeriveSettings;
  readonly retryBaseMs?: number;
  /** How long an image waits for another worker's fetch of its URL before fetching it too (--shared-wait). */
  readonly sharedWaitMs: number;
  /**
   * Throws once the run has lost its hold on the ledger (a worker whose lease
   * ran out). Asked every second, not only before a publish: a worker with
   * nothing to publish (its hosts' slots went with its lease) must stop too.
   */
  readonly checkHold?: () => void;
}
