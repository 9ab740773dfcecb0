import { resolve } from 'node:path';
import type { Command } from 'commander';
import { widthList } from '../../config/options.js';
import { derive, type DeriveSummary } from '../../derive/derive.js';
import { UsageError } from '../../errors.js';
import { withTreeHold } from '../../store/tree-hold.js';
import { createValidatorPool } from '../../validate/validator-pool.js';
import { formatCount } from '../progress.js';
import { addOptions, optionValues, runWithLiveLine, sayWaiting } from '../shared.js';
import { withRunLedger } from './run.js';

const KEYS = ['db', 'out', 'jpegQuality', 'lease', 'json', 'progress'] as const;

function summaryLines(s: DeriveSummary): string[] {
  const n = formatCount;
  const lines = [
    `${s.interrupted ? 'derive interrupted' : 'derived'} ${s.widths.map((w) => `w${w}`).join(', ')} under ${s.out} in ${(s.elapsedMs / 1000).toFixed(1)} s`,
    `  derived   ${n(s.derived)} gbifIDs (${n(s.files)} files) of ${n(s.due)} that lacked a width`,
  ];
  if (s.missing > 0) lines.push(`  missing   ${n(s.missing)} gbifIDs with a stored file gone from the tree: no derivatives`);
  if (s.broken > 0) lines.push(`  broken    ${n(s.broken)} gbifIDs with a stored file that no longer decodes: no derivatives`);
  if (s.missing + s.broken > 0) lines.push('  herbdl verify --repair makes such gbifIDs pending, for the next run to fetch their files again');
  if (s.interrupted) lines.push('run the same command again to finish: what is derived is kept');
  return lines;
}

export function registerDerive(program: Command): void {
  const command = program
    .command('derive')
    .description('write the stored images at other widths (<out>/w<width>/...), for done gbifIDs that lack them; resumable, all of a gbifID or none')
    .argument('<widths>', 'widths, comma-separated (256,1024): longer edge at most that, never upscaled');
  addOptions(command, KEYS);
  command.action(async (widthsArg: string, _flags, cmd: Command) => {
    const options = optionValues(cmd, KEYS);
    const widths = widthList(widthsArg, '<widths>');
    if (widths.length === 0) throw new UsageError('<widths>: give at least one width, such as 256,1024');
    const out = resolve(options.out);
    await withRunLedger(options.db, options.lease, (ledger, lock) => withTreeHold(ledger, lock, out, { widths }, async ({ downloads, publisher, temps }) => {
      const validator = createValidatorPool({ jpegQuality: options.jpegQuality, maxEdge: 0, check: 'decode' });
      try {
        await runWithLiveLine(
          ' derive | {derived} gbifIDs derived | {files} files | {rate} files/s',
          options,
          (signal, onProgress) => derive(downloads, { widths, out, temps, validator, publisher, signal, onProgress, onWait: sayWaiting }),
          (s, perSecond) => ({ derived: formatCount(s.derived), files: formatCount(s.files), rate: perSecond(s.files) }),
          summaryLines,
        );
      } finally {
        await validator.close();
      }
    }));
  });
}
