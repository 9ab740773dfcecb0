import { resolve } from 'node:path';
import type { Command } from 'commander';
import { EXIT_INTERRUPTED, UsageError } from '../../errors.js';
import { openLedger } from '../../ledger/open.js';
import { packWebdataset } from '../../pack/webdataset.js';
import { formatBytes, formatCount, progressBar } from '../progress.js';
import { addOptions, interruptible, optionValues } from '../shared.js';

const KEYS = ['db', 'packFormat', 'images', 'packOut', 'shardSize', 'width', 'state', 'json', 'progress'] as const;

/** A set carried on: the images it gained below its last one, and those it holds that are no longer done, with what to do. */
function carriedOn(late: number | undefined, stale: number | undefined): string[] {
  return [
    ...(late ? [`  late     ${formatCount(late)} of them done since the set's earlier shards were written, below its last image (a retry that succeeded): in this pack's shards`] : []),
    ...(stale
      ? [
          `  stale    the set's earlier shards hold ${formatCount(stale)} images that are not done in the ledger now (removed by a snapshot, or reopened):`,
          '           pack into a new folder for a set of what is done now',
        ]
      : []),
  ];
}

export function registerPack(program: Command): void {
  const command = program
    .command('pack')
    .description('hand the stored images to training: webdataset tar shards of <gbifID>-NN.jpg with a .json of attribution each, numbered without gaps, reproducible and resumable');
  addOptions(command, KEYS);
  command.action(async (_flags, cmd: Command) => {
    const options = optionValues(cmd, KEYS);
    if (options.state !== 'done') throw new UsageError(`--state ${options.state}: only done images have files to pack`);
    const ledger = await openLedger(options.db, { create: false });
    const status = await ledger.status({ hosts: 0 });
    if (options.width > 0 && !status.derivatives.some((d) => d.width === options.width)) {
      await ledger.close();
      const have = status.derivatives.map((d) => d.width).join(', ');
      throw new UsageError(`--width ${options.width}: no gbifID has derivatives of that width (${have ? `the ledger has ${have}` : 'the ledger has none'}); make them with herbdl derive ${options.width}`);
    }
    const total = status.images.done;
    const bar = progressBar(' pack |{bar}| {value} of {total} images | {shards} shards', options.progress);
    try {
      const summary = await interruptible((signal) =>
        packWebdataset(ledger, {
          images: resolve(options.images),
          out: resolve(options.packOut),
          shardSize: options.shardSize,
          width: options.width,
          signal,
          onProgress: !bar.drawn ? undefined : (p) => bar.update(p.images, total, { shards: formatCount(p.shards) }),
        }),
      );
      bar.stop();
      if (options.json) process.stdout.write(JSON.stringify(summary) + '\n');
      else {
        process.stdout.write(
          [
            `${summary.interrupted ? 'pack interrupted' : 'packed'} into ${summary.out}: ${formatCount(summary.shards)} shards (${formatCount(summary.written)} written now)`,
            `  images   ${formatCount(summary.images)} now, ${formatBytes(summary.bytes)}`,
            `  elapsed  ${(summary.elapsedMs / 1000).toFixed(1)} s`,
            ...carriedOn(summary.late, summary.stale),
          ].join('\n') + '\n',
        );
      }
      if (summary.interrupted) process.exitCode = EXIT_INTERRUPTED;
    } finally {
      bar.stop();
      await ledger.close();
    }
  });
}
