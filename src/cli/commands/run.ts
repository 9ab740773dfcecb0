import type { Command } from 'commander';
import { RUN_OPTION_KEYS, type RunOptions } from '../../config/options.js';
import { EXIT_INTERRUPTED } from '../../errors.js';
import type { Ledger, RunLock } from '../../ledger/ledger.js';
import { openLedger } from '../../ledger/open.js';
import type * as RunModule from '../../scheduler/run.js';
import type { Scheduler } from '../../scheduler/scheduler.js';
import type { Validator } from '../../validate/validator-pool.js';
import { VERSION } from '../version.js';
import { formatBytes, formatCount, liveLine, LISTED_HOSTS, someHosts } from '../progress.js';
import { addOptions, interruptible, optionValues } from '../shared.js';

type RunSummary = Awaited<ReturnType<typeof RunModule.downloadRun>>;

function printSummary(t: RunSummary, pending: number): void {
  const seconds = Math.max(t.elapsedMs / 1000, 0.001);
  const lines = [
    `gbifIDs   done ${formatCount(t.idsDone)}  failed ${formatCount(t.idsFailed)}  set aside ${formatCount(t.idsSetAside)}  still pending ${formatCount(pending)}`,
    `images    ${formatCount(t.images)} fetched, ${formatCount(t.shared)} shared${t.iiifDocuments ? `, IIIF manifests or services expanded: ${formatCount(t.iiifDocuments)}` : ''}  ${formatBytes(t.bytes)}  ${(t.images / seconds).toFixed(1)} images/s  ${formatBytes(t.bytes / seconds)}/s`,
    `elapsed   ${seconds.toFixed(1)} s`,
  ];
  const failures = Object.entries(t.failures);
  if (failures.length) lines.push(`failures  ${failures.map(([c, n]) => `${c} ${formatCount(n)}`).join(', ')}`);
  if (t.retriesPutOff) lines.push(`retries   ${formatCount(t.retriesPutOff)} failed gbifIDs due for a retry waited on open breakers (still failed; a later run retries them)`);
  if (t.hostsOpened.length) lines.push(`breakers opened on ${someHosts(t.hostsOpened)} (their gbifIDs stay pending; see herbdl status)`);
  const blocked = Object.entries(t.blocked).sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
  if (blocked.length) {
    const more = blocked.slice(LISTED_HOSTS).reduce((n, [, ids]) => n + ids, 0);
    lines.push(`blocked   pending on open breakers: ${someHosts(blocked.map(([host, n]) => `${host} ${formatCount(n)} gbifIDs`), `, ${formatCount(more)} gbifIDs`)}`);
    lines.push('          a later run probes each once its breaker may close (herbdl status says when); herbdl retry-failed --host <host> takes one up now');
  }
  if (t.recovered) lines.push(`removed the files of ${t.recovered} gbifIDs a run that stopped early (killed, or by an error) left half-published (they are pending again)`);
  process.stdout.write(lines.join('\n') + '\n');
}

/** Runs the downloader with a live line on a terminal and a summary at the end. */
export async function runDownloads(ledger: Ledger, lock: RunLock, options: RunOptions): Promise<void> {
  // The validation workers first: each thread boots its own V8 (and a run of one image took 0.6 s, a
  // quarter of it waiting for them), so they start while this thread loads the download engine.
  const { createValidatorPool } = await import('../../validate/validator-pool.js');
  const validator = createValidatorPool({ jpegQuality: options.jpegQuality, maxEdge: options.maxEdge, check: options.check, derive: options.derive });
  try {
    await downloadWith(validator, ledger, lock, options);
  } finally {
    await validator.close();
  }
}

async function downloadWith(validator: Validator, ledger: Ledger, lock: RunLock, options: RunOptions): Promise<void> {
  // The download engine (undici) is loaded only by the commands that download: `status` starts in half the time.
  const { downloadRun } = await import('../../scheduler/run.js');
  let scheduler: Scheduler | undefined;
  const line = liveLine(options.progress, () => {
    if (!scheduler) return '';
    const t = scheduler.tally;
    const seconds = Math.max((Date.now() - t.started) / 1000, 0.001);
    const held = scheduler.hostsHeld();
    return `gbifIDs done ${formatCount(t.idsDone)} failed ${formatCount(t.idsFailed)} aside ${formatCount(t.idsSetAside)} | ${(t.images / seconds).toFixed(0)} images/s ${formatBytes(t.bytes / seconds)}/s | hosts cooling ${held.cooling} open ${held.open}`;
  });
  try {
    let stopSignal: AbortSignal | undefined;
    const tally = await interruptible((signal) => {
      stopSignal = signal;
      return downloadRun(ledger, options, { lock, signal, version: VERSION, validator, onStart: (s) => (scheduler = s) });
    });
    line.stop();
    const pending = (await ledger.status({ hosts: 0 })).ids.pending;
    if (options.json) process.stdout.write(JSON.stringify({ ...tally, pending }) + '\n');
    else printSummary(tally, pending);
    if (stopSignal?.aborted) process.exitCode = EXIT_INTERRUPTED;
  } finally {
    line.stop();
  }
}

/**
 * Opens the ledger held for one run (on a SQLite file a second run or
 * retry-failed is refused before anything is touched; on PostgreSQL the run
 * joins as one more worker), does `work`, and lets go, handing back its claims.
 *
 * With 8 MiB of SQLite page cache, not the 32 ingest has: these commands
 * claim and record in batches, in gbifID order, and the operating system's
 * cache serves the rest. At 2,000 hosts a run's memory settled at 300 to
 * 308 MB with 32 (once a long run had filled it) and 272 to 278 MB with 8,
 * at the same speed (849 and 872 sheets a second).
 */
export async function withRunLedger(db: string, leaseSeconds: number, work: (ledger: Ledger, lock: RunLock) => Promise<void>): Promise<void> {
  const ledger = await openLedger(db, { pageCacheMb: 8, create: false });
  try {
    const lock = await ledger.lockForRun({ leaseMs: leaseSeconds * 1000 });
    try {
      await work(ledger, lock);
    } finally {
      await lock.release();
    }
  } finally {
    await ledger.close();
  }
}

export function registerRun(program: Command): void {
  const command = program
    .command('run')
    .description('fetch every pending image; a gbifID is written only when all its images succeed');
  addOptions(command, RUN_OPTION_KEYS);
  command.action(async (_flags, cmd: Command) => {
    const options = optionValues(cmd, RUN_OPTION_KEYS);
    await withRunLedger(options.db, options.lease, (ledger, lock) => runDownloads(ledger, lock, options));
  });
}
