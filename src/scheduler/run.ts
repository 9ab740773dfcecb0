/**
 * One download run: recover what a killed run left, then schedule until
 * nothing more can be attempted now. Used by `run` and `retry-failed`.
 */
import { resolve } from 'node:path';
import pino, { type Logger } from 'pino';
import type { RunOptions } from '../config/options.js';
import { createAgent, userAgent } from '../fetch/http-client.js';
import type { Ledger, RunLock } from '../ledger/ledger.js';
import { withTreeHold } from '../store/tree-hold.js';
import type { ValidatedImage } from '../validate/validate-image.js';
import type { Validator } from '../validate/validator-pool.js';
import { Scheduler } from './scheduler.js';
import type { RunTally } from './tally.js';

export interface RunHooks {
  /** The run's hold on the ledger (Ledger.lockForRun): alone on a SQLite file, one leased worker on PostgreSQL. */
  readonly lock: RunLock;
  readonly signal?: AbortSignal;
  /** Called with the scheduler once it exists (for a live display). */
  readonly onStart?: (scheduler: Scheduler) => void;
  readonly version: string;
  /**
   * The validation workers, started by the caller and closed by it: the CLI
   * starts them before it loads this module (undici, pino), so that their
   * threads boot meanwhile. Required unless `validate` stands in.
   */
  readonly validator?: Validator;
  /**
   * Stands in for image validation. Only benchmarks pass one (a header read),
   * to measure the download engine alone beside the same run with validation.
   * Like the real one, it must write a `body` it is given to `path`.
   */
  readonly validate?: (path: string, body?: Buffer) => Promise<ValidatedImage>;
}

export function createLogger(logFile: string): Logger {
  if (!logFile) return pino({ enabled: false });
  return pino({ level: 'info', base: { pid: process.pid } }, pino.destination({ dest: logFile, mkdir: true, sync: true }));
}

export async function downloadRun(ledger: Ledger, options: RunOptions, hooks: RunHooks): Promise<RunTally & { recovered: number }> {
  // Made by withTreeHold, once it has checked the folder is this ledger's.
  const out = resolve(options.out);
  if (hooks.validate && options.derive.length > 0) throw new Error('a stand-in validator makes no derivatives');
  const log = createLogger(options.logFile);
  return withTreeHold(ledger, hooks.lock, out, { widths: options.derive }, async ({ downloads, publisher, temps, undone }) => {
    if (undone > 0) log.warn({ gbifIds: undone }, 'removed the files of gbifIDs a run that stopped early (killed, or by an error) left half-published');
    const validator = hooks.validator;
    const validate = hooks.validate ?? (validator && ((path: string, body?: Buffer) => validator.validate(path, body)));
    if (!validate) throw new Error('downloadRun needs a validator, or a stand-in for one');
    // Every width the ledger has had: a reopened gbifID's derivatives of each are replaced or removed when it is published again.
    const known = [...new Set([...options.derive, ...(await downloads.derivedWidths())])];
    const agent = createAgent({ timeoutMs: options.timeout * 1000, perHost: options.perHost, concurrency: options.concurrency, allowPrivateNetwork: options.allowPrivateNetwork });
    try {
      const scheduler = new Scheduler(downloads, publisher, {
        out,
        temps,
        concurrency: options.concurrency,
        perHost: options.perHost,
        retries: options.retries,
        breakerThreshold: options.breakerThreshold,
        breakerCooldownMs: options.breakerCooldown * 1000,
        breakerWindowMs: options.breakerWindow * 1000,
        sharedWaitMs: options.sharedWait * 1000,
        maxAttempts: options.maxAttempts,
        limit: options.limit,
        fetch: {
          agent,
          userAgent: userAgent(hooks.version, options.userAgent),
          deadlineMs: options.deadline * 1000,
          maxBytes: options.maxBytes,
          allowPrivateNetwork: options.allowPrivateNetwork,
        },
        validate,
        derive: { widths: options.derive, known, make: (path, widths) => (validator as Validator).derive(path, widths, path) },
        checkHold: () => hooks.lock.check(),
      }, log, await downloads.openBreakers(), [...(await downloads.blockedHosts()).keys()]);
      log.info({ out, concurrency: options.concurrency, perHost: options.perHost }, 'run started');
      hooks.onStart?.(scheduler);
      const tally = await scheduler.run(hooks.signal);
      await downloads.recordHostRates(scheduler.hostRates());
      log.info({ ...tally }, 'run finished');
      return Object.assign(tally, { recovered: undone });
    } finally {
      await agent.destroy();
      log.flush?.();
    }
  });
}
