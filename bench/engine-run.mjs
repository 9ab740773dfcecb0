// The download engine alone: `herbdl run` as the CLI runs it, but with image
// validation replaced by a JPEG header read. bench:run runs it beside the real
// thing on the same URLs to show what validation costs.
//   node bench/engine-run.mjs <ledger.db> <out> <concurrency>
import { resolveOptions, RUN_OPTION_KEYS } from '../dist/config/options.js';
import { openLedger } from '../dist/ledger/open.js';
import { downloadRun } from '../dist/scheduler/run.js';
import { readJpegFrame } from '../dist/validate/jpeg-header.js';
import { readFile, writeFile } from 'node:fs/promises';

const [db, out, concurrency] = process.argv.slice(2);
const options = resolveOptions(RUN_OPTION_KEYS, { db, out, concurrency: String(concurrency), allowPrivateNetwork: true, progress: false });
const ledger = await openLedger(db, { create: false });
// Like the real validator, it writes a body it was given in memory (the fetch did not).
const headerOnly = async (path, body) => {
  const frame = readJpegFrame(body ?? (await readFile(path)));
  if (!frame) throw new Error(`${path}: not a JPEG`);
  if (body) await writeFile(path, body);
  return { receivedFormat: 'jpeg', width: frame.width, height: frame.height };
};
const lock = await ledger.lockForRun({ leaseMs: options.lease * 1000 });
const tally = await downloadRun(ledger, options, { lock, version: '0.0.0-bench', validate: headerOnly });
await lock.release();
await ledger.close();
console.log(JSON.stringify(tally));
