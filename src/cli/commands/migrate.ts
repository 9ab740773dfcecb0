import type { Command } from 'commander';
import { UsageError } from '../../errors.js';
import { isPostgresUrl } from '../../ledger/open.js';
import { formatCount } from '../progress.js';
import { addOptions, optionValues } from '../shared.js';

export function registerMigrate(program: Command): void {
  const command = program
    .command('migrate')
    .description('move a SQLite ledger, with all its state, into an empty PostgreSQL database, to carry on with many workers')
    .requiredOption('--from <path>', 'the SQLite ledger file')
    .requiredOption('--to <url>', 'postgres:// URL of an empty database');
  addOptions(command, ['json']);
  command.action(async (flags: { from: string; to: string }, cmd: Command) => {
    const options = optionValues(cmd, ['json']);
    if (isPostgresUrl(flags.from)) throw new UsageError(`--from ${flags.from}: expected a SQLite ledger file`);
    if (!isPostgresUrl(flags.to)) throw new UsageError(`--to ${flags.to}: expected a postgres:// URL`);
    const { migrateLedger } = await import('../../ledger/migrate.js');
    const summary = await migrateLedger(flags.from, flags.to);
    if (options.json) process.stdout.write(JSON.stringify(summary) + '\n');
    else process.stdout.write(`moved ${flags.from} into the PostgreSQL ledger: ${Object.entries(summary.rows).map(([t, n]) => `${t} ${formatCount(n)}`).join(', ')}\n`);
  });
}
