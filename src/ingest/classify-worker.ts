/**
 * The ingest's second thread: classifies chunks of whole lines
 * (chunk-classifier.ts) while the main thread spends its time on SQLite
 * inserts, and sends back the kept images' numbers, URLs and creators in
 * typed arrays, moved, not copied.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { ColumnMap } from '../input/columns.js';
import { ChunkClassifier } from './chunk-classifier.js';

export type { ClassifyReply } from './chunk-classifier.js';

export interface ClassifyRequest {
  /** Chunks of whole lines, in input order: one reply for all of them. */
  readonly chunks: Uint8Array[];
}

const classifier = new ChunkClassifier(workerData as ColumnMap);

parentPort?.on('message', ({ chunks }: ClassifyRequest) => {
  const reply = classifier.classify(...chunks);
  const moved = [reply.gbifIds.buffer, reply.urlHashes.buffer, reply.hosts.buffer, reply.attributions.buffer, reply.textBytes.buffer, reply.textEnds.buffer] as ArrayBuffer[];
  parentPort?.postMessage(reply, moved);
});
