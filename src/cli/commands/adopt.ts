import { existsSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import type { Ledger, RunLock } from '../../ledger/ledger.js';
import { adopt, type AdoptSummary } from '../../adopt/adopt.js';
import { UsageError } from '../../errors.js';
import { withTreeHold } from '../../store/tree-hold.js';
import { createValidatorPool } from '../../validate/validator-pool.js';
import { formatCount } from '../progress.js';
import { addOptions, keepHeapNearLive, optionValues, runWithLiveLine } from '../shared.js';
import { withRunLedger } from './run.js';

const KEYS = ['db', 'layout', 'adoptOut', 'trustJpeg', 'lease', 'json', 'progress'] as const;

function summaryLines(s: AdoptSummary): string[] {
  const n = formatCount;
  const lines = [
    `${s.interrupted ? 'adopt interrupted' : 'adopted'} ${s.dir} (${s.layout} layout): ${n(s.filesChecked)} files checked in ${(s.elapsedMs / 1000).toFixed(1)} s`,
    `  adopted        ${n(s.adopted)} gbifIDs done (${n(s.adoptedFiles)} files), fetched from no host`,
  ];
  if (s.layout === 'flat') lines.push(`  first stored   ${n(s.firstStored)} gbifIDs have more images: run fetches only those`);
  lines.push(
    `  partial        ${n(s.partial)} gbifIDs with fewer files than images: pending, run fetches them`,
    `  extra files    ${n(s.extra)} gbifIDs with files beyond their last image: pending, run publishes their set`,
    `  rejected       ${n(s.rejectedIds)} gbifIDs with a file that failed its check: pending; files moved to ${s.dir}/.herbdl-rejected/`,
  );
  for (const [reason, count] of Object.entries(s.rejected)) lines.push(`    ${reason.padEnd(18)} ${n(count)} files`);
  lines.push(
    `  already done   ${n(s.alreadyDone)}`,
    `  excluded       ${n(s.excluded)}`,
    `  not in ledger  ${n(s.notInLedger)} gbifIDs (left alone)`,
  );
  if (s.held > 0) lines.push(`  held           ${n(s.held)} gbifIDs another worker holds now (run adopt again later)`);
  if (s.strays > 0) lines.push(`  strays         ${n(s.strays)} files or folders that do not fit the layout (left alone)`);
  if (s.interrupted) lines.push('run the same command again to finish: adopted gbifIDs are skipped');
  return lines;
}

export function registerAdopt(program: Command): void {
  const command = program
    .command('adopt')
    .description('take over the images an earlier download left on disk: gbifIDs whose files are all there and pass the checks become done, with no request to any host')
    .argument('<dir>', 'the earlier tree');
  addOptions(command, KEYS);
  command.action(async (dirArg: string, _flags, cmd: Command) => {
    const options = optionValues(cmd, KEYS);
    const dir = resolve(dirArg);
    if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new UsageError(`${dirArg}: no such folder`);
    if (options.layout === 'flat' && !options.adoptOut) throw new UsageError('--layout flat needs --out <dir>: the images folder of later runs, where the files are linked into herbdl\'s layout');
    const out = options.layout === 'flat' ? resolve(options.adoptOut) : dir;
    if (options.layout === 'herbdl' && options.adoptOut && resolve(options.adoptOut) !== dir) {
      throw new UsageError('--layout herbdl adopts the files where they are: give --out the same folder as the tree, or leave it out');
    }
    keepHeapNearLive();
    // Adopt publishes nothing under an intent, so it undoes nothing first.
    const work = (ledger: Ledger, lock: RunLock) => withTreeHold(ledger, lock, out, { recover: false, expectTree: false }, async ({ downloads, temps }) => {
      const validator = createValidatorPool({ jpegQuality: 90, maxEdge: 0, check: options.trustJpeg ? 'structure' : 'decode' });
      try {
        await runWithLiveLine(
          ' adopt | {files} files checked | {adopted} gbifIDs adopted | {rate} files/s',
          options,
          (signal, onProgress) => adopt(downloads, { dir, layout: options.layout, out, temps, validator, signal, onProgress }),
          (s, perSecond) => ({ files: formatCount(s.filesChecked), adopted: formatCount(s.adopted), rate: perSecond(s.filesChecked) }),
          summaryLines,
        );
      } finally {
        await validator.close();
      }
    });
    // It reads the ledger in gbifID order, a batch at a time: the 8 MiB of page cache every run has serve it as 32 do.
    await withRunLedger(options.db, options.lease, work);
  });
}

