import { resolve } from 'node:path';
import type { Command } from 'commander';
import { prune, type PruneSummary } from '../../prune/prune.js';
import { withTreeHold } from '../../store/tree-hold.js';
import { formatBytes, formatCount } from '../progress.js';
import { addOptions, interruptible, optionValues, report, sayWaiting } from '../shared.js';
import { withRunLedger } from './run.js';

const KEYS = ['db', 'out', 'dryRun', 'list', 'lease', 'json'] as const;

function summaryLine(s: PruneSummary): string {
  const what = `${formatCount(s.files)} files (${formatBytes(s.bytes)}) of ${formatCount(s.ids)} removed gbifIDs and ${formatCount(s.goneImages)} images gone at the source`;
  if (s.dryRun) return `prune --dry-run: would remove ${what} from ${s.out}; nothing was changed`;
  return `${s.interrupted ? 'prune interrupted: removed' : 'pruned'} ${what} from ${s.out} in ${(s.elapsedMs / 1000).toFixed(1)} s${s.interrupted ? '; run it again to finish' : ''}`;
}

export function registerPrune(program: Command): void {
  const command = program
    .command('prune')
    .description('remove the files of gbifIDs a newer export removed (ingest --snapshot): per gbifID, all or nothing; nothing else ever deletes them');
  addOptions(command, KEYS);
  command.action(async (_flags, cmd: Command) => {
    const options = optionValues(cmd, KEYS);
    const out = resolve(options.out);
    // A dry run changes nothing, so it undoes nothing either.
    await withRunLedger(options.db, options.lease, (ledger, lock) => withTreeHold(ledger, lock, out, { recover: !options.dryRun, readOnly: options.dryRun }, async ({ downloads, publisher }) => {
      const summary = await interruptible((signal) =>
        prune(downloads, { out, dryRun: options.dryRun, publisher, signal, onWait: sayWaiting, onFile: options.list ? (path) => process.stdout.write(`${path}\n`) : undefined }),
      );
      report(summary, options.json, (s) => [summaryLine(s)]);
    }));
  });
}
