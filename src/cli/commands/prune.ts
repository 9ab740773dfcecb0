import { mkdir, rm } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { prune, type PruneSummary } from '../../prune/prune.js';
import { ownerMayLive, runTempFolder } from '../../store/layout.js';
import { Publisher } from '../../store/publisher.js';
import { formatBytes, formatCount } from '../progress.js';
import { addOptions, interruptible, optionValues, report } from '../shared.js';
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
    await withRunLedger(options.db, options.lease, async (ledger, lock) => {
      const downloads = await ledger.openDownloads(lock);
      const publisher = new Publisher(out, downloads, () => lock.check());
      const temps = runTempFolder(out, lock.holder);
      if (!options.dryRun) {
        const live = await downloads.liveWorkers();
        await publisher.recover(temps, (owner) => ownerMayLive(owner, live));
        await mkdir(temps, { recursive: true });
      }
      try {
        const summary = await interruptible((signal) =>
          prune(downloads, { out, dryRun: options.dryRun, publisher, signal, onFile: options.list ? (path) => process.stdout.write(`${path}\n`) : undefined }),
        );
        report(summary, options.json, (s) => [summaryLine(s)]);
      } finally {
        if (!options.dryRun) await rm(temps, { recursive: true, force: true });
      }
    });
  });
}
