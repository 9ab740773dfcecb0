/**
 * The ingest's second thread: decodes chunks of whole lines, splits them and
 * classifies every row (the URL parse is the dearest part), while the main
 * thread spends its time on SQLite inserts. What it sends back is compact:
 * the kept images as one string (fields by tab, rows by newline; neither can
 * occur inside a field), with hosts and attributions as numbers into lists
 * sent once, and the skips counted by reason.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { ColumnMap } from '../input/columns.js';
import { classifyRow, SKIP_REASONS, type SkipReason } from '../input/rows.js';
import { Numbering } from './numbering.js';

export interface ClassifyRequest {
  readonly chunk: Uint8Array;
}

export interface ClassifyReply {
  /** Non-empty lines in the chunk: every row, kept or skipped. */
  readonly rows: number;
  /** Skipped rows by reason, in SKIP_REASONS order. */
  readonly skipped: number[];
  /** Kept images. */
  readonly count: number;
  /** Per kept image, five fields (gbifID, url, host number, creator, attribution number), all joined by tabs (no field holds one). */
  readonly images: string;
  /** The numbering of hosts and attributions started again before this chunk (it is bounded). */
  readonly restart: boolean;
  /** Hosts first numbered in this chunk, in number order. */
  readonly hosts: string[];
  /** Packed attributions first numbered in this chunk, in number order. */
  readonly attributions: string[];
}

const FIELDS_PER_IMAGE = 5;

const columns = workerData as ColumnMap;
const reasonIndex = new Map<SkipReason, number>(SKIP_REASONS.map((r, i) => [r, i]));
const decoder = new TextDecoder('utf-8');
let numbering = new Numbering();

parentPort?.on('message', ({ chunk }: ClassifyRequest) => {
  const restart = numbering.full;
  if (restart) numbering = new Numbering();
  const lines = decoder.decode(chunk).split('\n');
  const skipped = SKIP_REASONS.map(() => 0);
  const kept: (string | number)[] = [];
  let rows = 0;
  for (let line of lines) {
    if (line.length > 0 && line.charCodeAt(line.length - 1) === 13) line = line.slice(0, -1);
    if (line === '') continue;
    rows++;
    const row = classifyRow(line.split('\t'), columns);
    if (typeof row === 'string') {
      const i = reasonIndex.get(row) as number;
      skipped[i] = (skipped[i] as number) + 1;
      continue;
    }
    kept.push(row.gbifId, row.url, numbering.host(row.host), row.creator, numbering.attribution(row.attribution));
  }
  const reply: ClassifyReply = { rows, skipped, count: kept.length / FIELDS_PER_IMAGE, images: kept.join('\t'), restart, ...numbering.take() };
  parentPort?.postMessage(reply);
});
