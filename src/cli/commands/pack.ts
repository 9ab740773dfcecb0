import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { EXIT_INTERRUPTED, UsageError } from '../../errors.js';
import { openLedger } from '../../ledger/open.js';
import { lockSetFolder } from '../../pack/set-lock.js';
import { describeSplits, splitOf, type Split } from '../../pack/splits.js';
import { packWebdataset, type PackSummary } from '../../pack/webdataset.js';
import { formatBytes, formatCount, progressBar } from '../progress.js';
import { addOptions, interruptible, optionValues } from '../shared.js';

const KEYS = ['db', 'packFormat', 'images', 'packOut', 'shardSize', 'width', 'split', 'state', 'json', 'progress'] as const;

/** A set carried on: the images it gained below its last one, and those it holds that are no longer done or not as they are now, with what to do. */
function carriedOn(summary: PackSummary): string[] {
  const { late, stale, changed } = summary;
  return [
    ...(late ? [`  late     ${formatCount(late)} of them done since the set's earlier shards were written, below its last image (a retry that succeeded): in this pack's shards`] : []),
    ...(stale ? [`  stale    the set's earlier shards hold ${formatCount(stale)} images that are not done in the ledger now (removed by a snapshot, or reopened)`] : []),
    ...(changed ? [`  changed  the set's earlier shards hold ${formatCount(changed)} images in the version they had when packed, which a recheck has replaced since`] : []),
    ...(stale || changed ? ['           pack into a new folder for a set of what is done now'] : []),
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
    const splits = options.split.length > 0 ? options.split : undefined;
    const out = resolve(options.packOut);
    // Splits are sets in folders under --out, each held while it is packed; --out is held too, so a second pack of the same splits is refused at once.
    let release: (() => void) | undefined;
    try {
      if (splits) {
        await mkdir(out, { recursive: true });
        release = lockSetFolder(out);
      }
      const summaries = await interruptible(async (signal) => {
        const done: PackSummary[] = [];
        // One set per split, one after the other: each reads the ledger's done images and packs its own gbifIDs.
        for (const one of splits ?? [undefined]) {
          const before = done.reduce((n, s) => n + s.images, 0);
          done.push(
            await packWebdataset(ledger, {
              images: resolve(options.images),
              out: one ? join(out, one.name) : out,
              shardSize: options.shardSize,
              width: options.width,
              ...(one && splits ? { split: { name: one.name, splits: describeSplits(splits), has: (gbifId: number) => splitOf(gbifId, splits) === one.name } } : {}),
              signal,
              onProgress: !bar.drawn ? undefined : (p) => bar.update(before + p.images, total, { shards: formatCount(p.shards) }),
            }),
          );
          if (signal.aborted) break;
        }
        return done;
      });
      bar.stop();
      // A stop between two splits leaves the later ones unpacked: interrupted too.
      const interrupted = summaries.some((s) => s.interrupted) || summaries.length < (splits?.length ?? 1);
      if (options.json) {
        const json = splits ? { out, splits: Object.fromEntries(summaries.map((s, i) => [(splits[i] as Split).name, s])), interrupted } : summaries[0];
        process.stdout.write(JSON.stringify(json) + '\n');
      } else {
        const lines = summaries.flatMap((summary) => [
          `${summary.interrupted ? 'pack interrupted' : 'packed'} into ${summary.out}: ${formatCount(summary.shards)} shards (${formatCount(summary.written)} written now)`,
          `  images   ${formatCount(summary.images)} now, ${formatBytes(summary.bytes)}`,
          `  elapsed  ${(summary.elapsedMs / 1000).toFixed(1)} s`,
          ...carriedOn(summary),
          ...(summary.moving ? [`  moving   ${formatCount(summary.moving)} images changed while this pack ran (a run, recheck or prune beside it): left out, the next pack adds them`] : []),
        ]);
        process.stdout.write(lines.join('\n') + '\n');
      }
      if (interrupted) process.exitCode = EXIT_INTERRUPTED;
    } finally {
      release?.();
      bar.stop();
      await ledger.close();
    }
  });
}
