import type { Command } from 'commander';
import { UsageError } from '../../errors.js';
import { exportImages } from '../../export/export.js';
import { exportParquet } from '../../export/parquet.js';
import { VERSION } from '../version.js';
import { openLedger } from '../../ledger/open.js';
import { addOptions, keepHeapNearLive, optionValues } from '../shared.js';

const KEYS = ['db', 'format', 'outFile', 'state'] as const;

export function registerExport(program: Command): void {
  const command = program
    .command('export')
    .description('one line per image with its attribution (licence, rights holder, creator, publisher) and outcome, as CSV, JSON lines or Parquet');
  addOptions(command, KEYS);
  command.action(async (_flags, cmd: Command) => {
    const options = optionValues(cmd, KEYS);
    if (options.format === 'parquet' && !options.outFile) throw new UsageError('--format parquet needs --out-file <path>: a Parquet file is not written to a terminal or a pipe');
    if (options.format === 'parquet') keepHeapNearLive();
    const ledger = await openLedger(options.db, { create: false });
    try {
      const { format } = options;
      const count = format === 'parquet' ? await exportParquet(ledger, options.state, options.outFile, VERSION) : await exportImages(ledger, { ...options, format });
      if (options.outFile) process.stderr.write(`exported ${count} images to ${options.outFile}\n`);
    } finally {
      await ledger.close();
    }
  });
}
