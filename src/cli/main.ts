/**
 * The command line: a thin layer that parses options, calls into ingest, the
 * ledger or the scheduler, and turns errors into one line and an exit code.
 */
import { Command, CommanderError } from 'commander';
import { fileSystemErrno, HerbdlError } from '../errors.js';
import { registerAdopt } from './commands/adopt.js';
import { registerDerive } from './commands/derive.js';
import { registerExclude } from './commands/exclude.js';
import { registerExport } from './commands/export.js';
import { registerIngest } from './commands/ingest.js';
import { registerMigrate } from './commands/migrate.js';
import { registerPack } from './commands/pack.js';
import { registerPrune } from './commands/prune.js';
import { registerRecheck } from './commands/recheck.js';
import { registerRetryFailed } from './commands/retry-failed.js';
import { registerRun } from './commands/run.js';
import { registerStatus } from './commands/status.js';
import { VERSION } from './version.js';


export function buildProgram(): Command {
  const program = new Command('herbdl')
    .description('Bulk image downloader for GBIF multimedia: ingest a download into a ledger, then fetch every image.')
    .version(VERSION)
    .showHelpAfterError('(run herbdl --help for usage)')
    .exitOverride();
  registerIngest(program);
  registerStatus(program);
  registerRun(program);
  registerRetryFailed(program);
  registerExport(program);
  registerExclude(program);
  registerAdopt(program);
  registerDerive(program);
  registerPack(program);
  registerPrune(program);
  registerRecheck(program);
  registerMigrate(program);
  return program;
}

export async function main(argv: string[]): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      // Commander has already printed its message (or the help text).
      process.exitCode = err.exitCode === 0 ? 0 : 2;
      return;
    }
    if (err instanceof HerbdlError) {
      process.stderr.write(`herbdl: ${err.message}\n`);
      process.exitCode = err.exitCode;
      return;
    }
    if (fileSystemErrno(err)) {
      // The file system refused (disk full, not writable, not a folder): the machine's problem, said in one line.
      process.stderr.write(`herbdl: ${(err as Error).message}\n`);
      process.exitCode = 1;
      return;
    }
    process.stderr.write(`herbdl: unexpected error: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exitCode = 1;
  }
}
