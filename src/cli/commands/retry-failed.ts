import type { Command } from 'commander';
import { RUN_OPTION_KEYS } from '../../config/options.js';
import { someHosts } from '../progress.js';
import { addOptions, optionValues } from '../shared.js';
import { runDownloads, withRunLedger } from './run.js';

const KEYS = [...RUN_OPTION_KEYS, 'host', 'error'] as const;

export function registerRetryFailed(program: Command): void {
  const command = program
    .command('retry-failed')
    .description('take failed gbifIDs (all, or those failing on --host or with --error) up again, ahead of new work, and close the breakers of --host (or of every host), then run');
  addOptions(command, KEYS);
  command.action(async (_flags, cmd: Command) => {
    const options = optionValues(cmd, KEYS);
    await withRunLedger(options.db, options.lease, async (ledger, lock) => {
      const downloads = await ledger.openDownloads(lock);
      // The user says the host is back: its breaker closes, so its blocked gbifIDs are taken up in this run.
      const closed = options.error && !options.host ? [] : await downloads.closeBreakers(options.host || undefined);
      const requeued = await downloads.requeueFailed({ host: options.host || undefined, code: options.error || undefined });
      if (!options.json) {
        if (closed.length) process.stdout.write(`closed the breaker of ${someHosts(closed)}\n`);
        process.stdout.write(`re-queued ${requeued} failed gbifIDs\n`);
      }
      await runDownloads(ledger, lock, options);
    });
  });
}
