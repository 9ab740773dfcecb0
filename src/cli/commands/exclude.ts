import type { Command } from 'commander';
import { EXIT_INTERRUPTED } from '../../errors.js';
import { excludeFiles, type ExcludeSummary } from '../../ingest/exclude.js';
import type { Ledger } from '../../ledger/ledger.js';
import { openLedger } from '../../ledger/open.js';
import { formatBytes, formatCount, progressBar } from '../progress.js';
import { addOptions, interruptible, optionValues } from '../shared.js';

export function excludeLines(s: ExcludeSummary): string[] {
  const lines = s.undo
    ? [
        `${s.interrupted ? 'undo interrupted' : 'no longer excluded'}: the gbifIDs of ${s.files.join(', ')}`,
        `  gbifIDs read  ${formatCount(s.read)}`,
        `  unlisted      ${formatCount(s.unlisted)} (others were not on the exclusion list, or repeated)`,
        `  back pending  ${formatCount(s.restored)} excluded gbifIDs of the ledger (the next run fetches them; failed ones are tried again)`,
      ]
    : [
        `${s.interrupted ? 'exclusion interrupted' : 'excluded'} the gbifIDs of ${s.files.join(', ')}`,
        `  gbifIDs read  ${formatCount(s.read)}`,
        `  newly listed  ${formatCount(s.listed)} (others were listed before, or repeated)`,
        `  excluded      ${formatCount(s.excluded)} pending or failed gbifIDs of the ledger (done ones stay done; IDs not ingested yet are excluded when they are)`,
      ];
  if (s.skipped > 0) lines.push(`  skipped       ${formatCount(s.skipped)} rows without a valid gbifID`);
  lines.push(`  elapsed       ${(s.elapsedMs / 1000).toFixed(1)} s`);
  if (s.interrupted) lines.push(`run the same command again to finish: IDs already ${s.undo ? 'unlisted' : 'listed'} are skipped`);
  return lines;
}

/** Reads the exclusion files into the ledger, with a progress bar on a terminal. */
export async function excludeWithProgress(files: readonly string[], ledger: Ledger, showProgress: boolean, undo = false): Promise<ExcludeSummary> {
  const bar = progressBar(' {file} |{bar}| {percentage}% {done} of {size} | {ids} gbifIDs', showProgress);
  try {
    return await interruptible((signal) =>
      excludeFiles(files, ledger, {
        signal,
        undo,
        onProgress: !bar.drawn ? undefined : (p) => bar.update(p.bytesRead, p.totalBytes, { file: p.file, done: formatBytes(p.bytesRead), size: formatBytes(p.totalBytes), ids: formatCount(p.read) }),
      }),
    );
  } finally {
    bar.stop();
  }
}

export function registerExclude(program: Command): void {
  const command = program
    .command('exclude')
    .description('leave out gbifIDs other datasets already hold: they are never downloaded, and status counts them apart (--undo takes them back)')
    .argument('<file...>', 'multimedia.txt, .gz or GBIF zip of another export, or a list of gbifIDs, one per line');
  addOptions(command, ['db', 'undo', 'json', 'progress']);
  command.action(async (files: string[], _flags, cmd: Command) => {
    const options = optionValues(cmd, ['db', 'undo', 'json', 'progress']);
    const ledger = await openLedger(options.db, { create: false });
    try {
      const summary = await excludeWithProgress(files, ledger, options.progress, options.undo);
      if (options.json) process.stdout.write(JSON.stringify({ ...summary, db: options.db }) + '\n');
      else process.stdout.write(excludeLines(summary).join('\n') + '\n');
      if (summary.interrupted) process.exitCode = EXIT_INTERRUPTED;
    } finally {
      await ledger.close();
    }
  });
}
