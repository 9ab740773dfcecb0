/**
 * The ingest's second thread: decodes chunks of whole lines, splits them and
 * classifies every row (the URL parse is the dearest part), while the main
 * thread spends its time on SQLite inserts. What it sends back is compact:
 * numbers in typed arrays, the kept images' URLs and creators as one string,
 * hosts and attributions as numbers into lists sent once, and the skips
 * counted by reason.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { ColumnMap } from '../input/columns.js';
import { classifyRow, SKIP_REASONS, type SkipReason } from '../input/rows.js';
import { urlHash } from '../input/url-hash.js';
import { Numbering } from './numbering.js';

export interface ClassifyRequest {
  readonly chunk: Uint8Array;
}

export interface ClassifyReply {
  /** Non-empty lines in the chunk: every row, kept or skipped. */
  readonly rows: number;
  /** Skipped rows by reason, in SKIP_REASONS order. */
  readonly skipped: number[];
  /** Kept images; the arrays below hold at least this many. */
  readonly count: number;
  readonly gbifIds: Float64Array;
  readonly urlHashes: Float64Array;
  /** Per kept image, the number of its host and of its attribution. */
  readonly hosts: Int32Array;
  readonly attributions: Int32Array;
  /** Per kept image, its URL and creator, all joined by tabs (no field holds one). */
  readonly texts: string;
  /** The numbering of hosts and attributions started again before this chunk (it is bounded). */
  readonly restart: boolean;
  /** Hosts first numbered in this chunk, in number order. */
  readonly newHosts: string[];
  /** Packed attributions first numbered in this chunk, in number order. */
  readonly newAttributions: string[];
}

const columns = workerData as ColumnMap;
const reasonIndex = new Map<SkipReason, number>(SKIP_REASONS.map((r, i) => [r, i]));
const decoder = new TextDecoder('utf-8');
let numbering = new Numbering();

parentPort?.on('message', ({ chunk }: ClassifyRequest) => {
  const restart = numbering.full;
  if (restart) numbering = new Numbering();
  const lines = decoder.decode(chunk).split('\n');
  const skipped = SKIP_REASONS.map(() => 0);
  // Numbers go in typed arrays (moved, not copied, to the main thread); text in one string.
  const gbifIds = new Float64Array(lines.length);
  const urlHashes = new Float64Array(lines.length);
  const hosts = new Int32Array(lines.length);
  const attributions = new Int32Array(lines.length);
  const texts: string[] = [];
  let rows = 0;
  let count = 0;
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
    gbifIds[count] = row.gbifId;
    urlHashes[count] = urlHash(row.url);
    hosts[count] = numbering.host(row.host);
    attributions[count] = numbering.attribution(row.attribution);
    texts.push(row.url, row.creator);
    count++;
  }
  const fresh = numbering.take();
  const reply: ClassifyReply = {
    rows,
    skipped,
    count,
    gbifIds,
    urlHashes,
    hosts,
    attributions,
    texts: texts.join('\t'),
    restart,
    newHosts: fresh.hosts,
    newAttributions: fresh.attributions,
  };
  parentPort?.postMessage(reply, [gbifIds.buffer, urlHashes.buffer, hosts.buffer, attributions.buffer]);
});
