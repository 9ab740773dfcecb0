import { resolve } from 'node:path';
import type { Command } from 'commander';
import { TreeDamagedError } from '../../errors.js';
import { withTreeHold } from '../../store/tree-hold.js';
import { verify, type VerifySummary } from '../../verify/verify.js';
import { formatBytes, formatCount } from '../progress.js';
import { addOptions, interruptible, optionValues, report, sayWaiting } from '../shared.js';
import { withRunLedger } from './run.js';

const KEYS = ['db', 'out', 'hash', 'repair', 'after', 'problems', 'lease', 'json'] as const;

function files(k: number): string {
  return `${formatCount(k)} ${k === 1 ? 'file' : 'files'}`;
}

function summaryLines(s: VerifySummary): string[] {
  const n = formatCount;
  const how = s.hash ? 'sizes and sha256' : 'sizes';
  const lines = [
    `${s.interrupted ? 'verify interrupted: checked' : 'verified'} ${n(s.files)} files (${formatBytes(s.bytes)}) of ${n(s.ids)} done gbifIDs in ${s.out}, ${how}, in ${(s.elapsedMs / 1000).toFixed(1)} s`,
  ];
  if (s.brokenIds === 0) lines.push('every file is there, as recorded');
  else {
    lines.push(`missing    ${files(s.missing)} of done gbifIDs`, `damaged    ${files(s.damaged)} of done gbifIDs`);
    if (s.repair) lines.push(`repaired   ${n(s.reopened)} gbifIDs are pending again, ${n(s.movedAside)} damaged files moved to ${s.out}/.herbdl-rejected/damaged/: herbdl run fetches them`);
  }
  if (s.interrupted) lines.push(`stopped: every gbifID up to ${s.checkedThrough ?? 0} was checked; herbdl verify --after ${s.checkedThrough ?? 0} carries on from there`);
  return lines;
}

export function registerVerify(program: Command): void {
  const command = program
    .command('verify')
    .description("check that every done gbifID's files are in the tree as recorded (size; --hash: sha256); --repair makes those with a file missing or damaged pending again");
  addOptions(command, KEYS);
  command.action(async (_flags, cmd: Command) => {
    const options = optionValues(cmd, KEYS);
    const out = resolve(options.out);
    await withRunLedger(options.db, options.lease, (ledger, lock) =>
      withTreeHold(ledger, lock, out, { readOnly: !options.repair }, async ({ downloads }) => {
        const summary = await interruptible((signal) =>
          verify(downloads, {
            out,
            hash: options.hash,
            repair: options.repair,
            after: options.after,
            signal,
            onWait: sayWaiting,
            onProblem: options.problems ? (p) => process.stdout.write(`${p.problem}\t${p.path}\t${p.detail}\n`) : undefined,
          }),
        );
        report(summary, options.json, summaryLines);
        if (summary.brokenIds > 0 && !summary.repair && !summary.interrupted) {
          throw new TreeDamagedError(
            `${formatCount(summary.brokenIds)} done gbifIDs lack a file or have a damaged one (${formatCount(summary.missing)} missing, ${formatCount(summary.damaged)} damaged); herbdl verify --repair makes them pending, for the next run to fetch`,
          );
        }
      }),
    );
  });
}
