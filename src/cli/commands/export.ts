import type { Command } from 'commander';
import { exportImages } from '../../export/export.js';
import { openLedger } from '../../ledger/open.js';
import { addOptions, optionValues } from '../shared.js';

const KEYS = ['db', 'format', 'outFile', 'state'] as const;

export function registerExport(program: Command): void {
  const command = program
    .command('export')
    .description('one line per image with its attribution (licence, rights holder, creator, publisher) and outcome, as CSV or JSON lines');
  addOptions(command, KEYS);
  command.action(async (_flags, cmd: Command) => {
    const options = optionValues(cmd, KEYS);
    const ledger = await openLedger(options.db, { create: false });
    try {
      const count = await exportImages(ledger, options);
      if (options.outFile) process.stderr.write(`exported ${count} images to ${options.outFile}\n`);
    } finally {
      await ledger.close();
    }
  });
}
