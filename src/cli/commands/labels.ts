import type { Command } from 'commander';
import { DEFAULT_LABEL_FIELDS } from '../../config/options.js';
import { loadLabels, type LabelSummary } from '../../ingest/labels.js';
import { openLedger } from '../../ledger/open.js';
import { formatBytes, formatCount, progressBar } from '../progress.js';
import { addOptions, interruptible, keepHeapNearLive, optionValues, report } from '../shared.js';

const KEYS = ['db', 'fields', 'json', 'progress'] as const;

function lines(s: LabelSummary): string[] {
  if (s.interrupted) return [`labels interrupted after ${formatCount(s.rows)} rows of ${s.files.join(', ')}: the ledger keeps the labels it had; run the same command again`];
  return [
    `labels from ${s.files.join(', ')}`,
    `  fields     ${s.fields.join(', ')}`,
    `  rows       ${formatCount(s.rows)}${s.skipped > 0 ? ` (${formatCount(s.skipped)} skipped: no gbifID, or cut short)` : ''}`,
    `  labelled   ${formatCount(s.labelled)} gbifIDs of the ledger (pack's .json and export carry their labels)`,
    `  elapsed    ${(s.elapsedMs / 1000).toFixed(1)} s`,
  ];
}

export function registerLabels(program: Command): void {
  const command = program
    .command('labels')
    .description("keep fields of the download's occurrence file (scientificName, family, taxonKey, ...) per gbifID, for pack and export to hand to training; each load replaces the last")
    .argument('<file...>', 'GBIF download zip, the folder it was unzipped into, or its occurrence.txt (.gz)');
  addOptions(command, KEYS);
  command.action(async (files: string[], _flags, cmd: Command) => {
    const options = optionValues(cmd, KEYS);
    // Each row's fields are garbage once in the ledger: little is live, and V8 would let the heap grow to four times that.
    keepHeapNearLive();
    const ledger = await openLedger(options.db, { create: false });
    const bar = progressBar(' {file} |{bar}| {percentage}% {done} of {size} | {rows} rows', options.progress);
    try {
      const summary = await interruptible((signal) =>
        loadLabels(files, ledger, {
          fields: options.fields,
          defaultFields: options.fields === DEFAULT_LABEL_FIELDS,
          signal,
          onProgress: !bar.drawn ? undefined : (p) => bar.update(p.bytesRead, p.totalBytes, { file: p.file, done: formatBytes(p.bytesRead), size: formatBytes(p.totalBytes), rows: formatCount(p.rows) }),
        }),
      );
      bar.stop();
      report(summary, options.json, lines);
    } finally {
      bar.stop();
      await ledger.close();
    }
  });
}
