/**
 * The command line: a thin layer that parses options, calls into ingest, the
 * ledger or the scheduler, and turns errors into one line and an exit code.
 */
import { Command, CommanderError } from 'commander';
import { fileSystemErrno, HerbdlError, isConnectionLoss, isOutOfSpace, ledgerRefusal } from '../errors.js';
import { VERSION } from './version.js';

type Register = (program: Command) => void;

/**
 * Each command's module, loaded only when needed: a command brings in its
 * whole stack (SQLite or PostgreSQL, undici, sharp's worker, tar, Parquet),
 * and `herbdl adopt` with every other command's modules loaded as well
 * started 10 MB larger. Help, and a name that is no command, load them all.
 */
const COMMANDS: Record<string, () => Promise<Register>> = {
  ingest: async () => (await import('./commands/ingest.js')).registerIngest,
  status: async () => (await import('./commands/status.js')).registerStatus,
  run: async () => (await import('./commands/run.js')).registerRun,
  'retry-failed': async () => (await import('./commands/retry-failed.js')).registerRetryFailed,
  export: async () => (await import('./commands/export.js')).registerExport,
  exclude: async () => (await import('./commands/exclude.js')).registerExclude,
  labels: async () => (await import('./commands/labels.js')).registerLabels,
  adopt: async () => (await import('./commands/adopt.js')).registerAdopt,
  derive: async () => (await import('./commands/derive.js')).registerDerive,
  pack: async () => (await import('./commands/pack.js')).registerPack,
  prune: async () => (await import('./commands/prune.js')).registerPrune,
  recheck: async () => (await import('./commands/recheck.js')).registerRecheck,
  migrate: async () => (await import('./commands/migrate.js')).registerMigrate,
  verify: async () => (await import('./commands/verify.js')).registerVerify,
};

/** The program with every command, or only `only` when it names one (the command being run). */
export async function buildProgram(only?: string): Promise<Command> {
  const program = new Command('herbdl')
    .description('Bulk image downloader for GBIF multimedia: ingest a download into a ledger, then fetch every image.')
    .version(VERSION)
    .showHelpAfterError('(run herbdl --help for usage)')
    .exitOverride();
  const names = only !== undefined && Object.hasOwn(COMMANDS, only) ? [only] : Object.keys(COMMANDS);
  for (const register of await Promise.all(names.map((name) => (COMMANDS[name] as () => Promise<Register>)()))) register(program);
  return program;
}

/**
 * A reader of our output that went away (`herbdl status | head -1`, a batch
 * job's log pipe that closed, the terminal of an ssh session that dropped)
 * is not the command's failure: what it did to the ledger and the tree
 * stands, so its exit code does too. Without this, the write's EPIPE ended a
 * run that had finished its work with a stack trace and exit 1.
 */
function ignoreClosedOutput(): void {
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EPIPE' && err.code !== 'EIO' && err.code !== 'ERR_STREAM_DESTROYED') throw err;
    });
  }
}

export async function main(argv: string[]): Promise<void> {
  ignoreClosedOutput();
  try {
    // argv[2] is the command's name when one is given (node, script, command, ...).
    await (await buildProgram(argv[2])).parseAsync(argv);
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
    if (isConnectionLoss(err)) {
      // The shared ledger's server went away under a command that does not wait for it (only a run does, while its lease holds).
      const what = (err as { code?: string }).code === '53300' ? 'has no connection free' : 'went away';
      process.stderr.write(`herbdl: the ledger's server ${what} (${(err as Error).message}); what was committed stays: run the command again once the server is back\n`);
      process.exitCode = 4;
      return;
    }
    const refused = ledgerRefusal(err);
    if (refused) {
      // The ledger's storage refused a write (a full disk, a standby server): nothing of that transaction was committed.
      const advice = refused.full ? 'free space for it, then run the command again' : 'run the command again once it can write';
      process.stderr.write(`herbdl: ${refused.what} (${(err as Error).message}); what was committed stays: ${advice}\n`);
      process.exitCode = 4;
      return;
    }
    if (fileSystemErrno(err)) {
      // The file system refused (disk full, not writable, not a folder): the machine's problem, said in one line.
      const advice = isOutOfSpace(err) ? '; free space there and run the command again (what it had finished is kept)' : '';
      process.stderr.write(`herbdl: ${(err as Error).message}${advice}\n`);
      process.exitCode = 1;
      return;
    }
    process.stderr.write(`herbdl: unexpected error: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exitCode = 1;
  }
}
