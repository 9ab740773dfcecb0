import { existsSync, rmSync } from 'node:fs';
import type { Command } from 'commander';
import { EXIT_INTERRUPTED, LedgerError } from '../../errors.js';
import type { Ledger, RunLock } from '../../ledger/ledger.js';
import type { IngestSummary } from '../../ingest/ingest.js';
import { isPostgresUrl, openLedger } from '../../ledger/open.js';
import { formatBytes, formatCount, progressBar } from '../progress.js';
import { addOptions, interruptible, optionValues } from '../shared.js';
import { excludeLines, excludeWithProgress } from './exclude.js';

function printSummary(s: IngestSummary, db: string): void {
  const skipped = Object.entries(s.skipped).filter(([, n]) => n > 0);
  const skippedTotal = skipped.reduce((a, [, n]) => a + n, 0);
  const lines = [
    `${s.interrupted ? 'ingest interrupted' : 'ingested'} ${s.files.join(', ')} into ${db}`,
    `  rows read    ${formatCount(s.rowsRead)}`,
    `  gbifIDs      ${formatCount(s.gbifIds)} new`,
    `  images       ${formatCount(s.images)} new`,
    `  duplicates   ${formatCount(s.duplicates)} (gbifID and URL already in the ledger)`,
  ];
  if (s.excluded > 0) lines.push(`  excluded     ${formatCount(s.excluded)} gbifIDs an exclusion list names: not downloaded`);
  if (s.snapshot) {
    lines.push(s.snapshot.applied ? `  removed      ${formatCount(s.removedIds)} gbifIDs and ${formatCount(s.removedImages)} images the snapshot lacks (their files stay until herbdl prune)` : '  removed      nothing yet: the snapshot is applied once its files are read whole');
  }
  if (s.reopened > 0) lines.push(`  reopened     ${formatCount(s.reopened)} done gbifIDs whose set of images changed: pending again, published anew by the next run`);
  lines.push(`  skipped      ${formatCount(skippedTotal)}`);
  for (const [reason, n] of skipped) lines.push(`    ${reason.padEnd(20)} ${formatCount(n)}`);
  lines.push(`  elapsed      ${(s.elapsedMs / 1000).toFixed(1)} s (${formatCount(s.rowsPerSecond)} rows/s)`);
  if (s.interrupted) lines.push('run the same command again to finish: rows already in the ledger are skipped');
  process.stdout.write(lines.join('\n') + '\n');
}

/**
 * A snapshot changes which gbifIDs exist: no run may hold any of them
 * meanwhile. On a SQLite file it takes the run lock (a live run refuses it,
 * naming the run); on a shared ledger it refuses while a worker is live.
 */
async function holdForSnapshot(ledger: Ledger): Promise<RunLock | undefined> {
  if (!isPostgresUrl(ledger.location)) return ledger.lockForRun({ leaseMs: 120_000 });
  const live = (await ledger.status({ hosts: 0 })).workers.filter((w) => !w.expired && !w.stopped);
  if (live.length > 0) throw new LedgerError(`${live.length} worker(s) are running on this ledger (${live.map((w) => w.worker).join(', ')}): stop them before ingest --snapshot`, 'ledger_busy');
  return undefined;
}

function removeLedger(db: string): void {
  for (const suffix of ['', '-wal', '-shm', '-journal']) rmSync(db + suffix, { force: true });
}

export function registerIngest(program: Command): void {
  const command = program
    .command('ingest')
    .description('stream GBIF multimedia rows (multimedia.txt, .gz, a download .zip, or its unzipped folder) into the ledger')
    .argument('<file...>', 'multimedia.txt, multimedia.txt.gz, a GBIF download zip, or the folder it was unzipped into');
  addOptions(command, ['db', 'snapshot', 'maxRemoval', 'exclude', 'json', 'progress', 'commitEvery']);
  command.action(async (files: string[], _flags, cmd: Command) => {
    const options = optionValues(cmd, ['db', 'snapshot', 'maxRemoval', 'exclude', 'json', 'progress', 'commitEvery']);
    const { ingestFiles } = await import('../../ingest/ingest.js');
    const existed = isPostgresUrl(options.db) || existsSync(options.db);
    const ledger = await openLedger(options.db, { create: true });
    const bar = progressBar(' {file} |{bar}| {percentage}% {done} of {size} | {rows} rows | {rate} rows/s | ETA {eta_formatted}', options.progress);
    const started = performance.now();
    let failed = true;
    let lock: RunLock | undefined;
    try {
      if (options.snapshot) lock = await holdForSnapshot(ledger);
      // Listed first: the ingest then meets the IDs already excluded (and an interrupted list stops here).
      const exclusion = options.exclude.length > 0 ? await excludeWithProgress(options.exclude, ledger, options.progress) : undefined;
      if (exclusion && !options.json) process.stdout.write(excludeLines(exclusion).join('\n') + '\n');
      if (exclusion?.interrupted) {
        process.exitCode = EXIT_INTERRUPTED;
        failed = false;
        return;
      }
      const summary = await interruptible((signal) =>
        ingestFiles(files, ledger, {
          signal,
          snapshot: options.snapshot,
          maxRemoval: options.maxRemoval / 100,
          commitEveryMs: options.commitEvery,
          onProgress: !bar.drawn ? undefined : (p) => {
            const seconds = (performance.now() - started) / 1000;
            bar.update(p.bytesRead, p.totalBytes, {
              file: p.file,
              done: formatBytes(p.bytesRead),
              size: formatBytes(p.totalBytes),
              rows: formatCount(p.rowsRead),
              rate: formatCount(Math.round(p.rowsRead / Math.max(seconds, 0.001))),
            });
          },
        }),
      );
      bar.stop();
      if (options.json) process.stdout.write(JSON.stringify({ ...summary, db: options.db, ...(exclusion ? { exclusion } : {}) }) + '\n');
      else printSummary(summary, options.db);
      if (summary.interrupted) process.exitCode = EXIT_INTERRUPTED;
      failed = false;
    } finally {
      bar.stop();
      await lock?.release();
      // A bad first input must not leave an empty ledger behind.
      const discard = failed && !existed && (await ledger.isEmpty());
      await ledger.close();
      if (discard) removeLedger(options.db);
    }
  });
}
