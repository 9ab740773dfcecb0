/**
 * Making files durable: the fsync that comes before a rename into place and
 * before the ledger counts anything as done (publisher.ts says the order).
 */
import { open } from 'node:fs/promises';

/** Flushes a file or folder already written (`r+` for a file some systems will not sync read-only). */
export async function fsyncPath(path: string, flags = 'r'): Promise<void> {
  const handle = await open(path, flags);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Writes a file whole and fsyncs it through the same handle: no second open to flush it. */
export async function writeSynced(path: string, data: string | Uint8Array): Promise<void> {
  const handle = await open(path, 'w');
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
}
