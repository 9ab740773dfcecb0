/**
 * The ingest's second thread: classifies chunks of whole lines
 * (chunk-classifier.ts) while the main thread spends its time on SQLite
 * inserts, and sends back numbers in typed arrays (moved, not copied) and the
 * kept images' URLs and creators as one string.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { ColumnMap } from '../input/columns.js';
import { ChunkClassifier } from './chunk-classifier.js';

export type { ClassifyReply } from './chunk-classifier.js';

export interface ClassifyRequest {
  readonly chunk: Uint8Array;
}

const classifier = new ChunkClassifier(workerData as ColumnMap);

parentPort?.on('message', ({ chunk }: ClassifyRequest) => {
  const reply = classifier.classify(chunk);
    const moved = [reply.gbifIds.buffer, reply.urlHashes.buffer, reply.hosts.buffer, reply.attributions.buffer] as ArrayBuffer[];
  parentPort?.postMessage(reply, moved);
});
