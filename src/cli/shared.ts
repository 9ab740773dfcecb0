/** What every command shares: declared options, resolution, Ctrl-C handling. */
import { setMaxListeners } from 'node:events';
import { setFlagsFromString } from 'node:v8';
import { Option, type Command } from 'commander';
import { attributeName, OPTIONS, resolveOptions, type OptionKey, type OptionValues } from '../config/options.js';
import { EXIT_INTERRUPTED } from '../errors.js';
import { formatCount, progressBar } from './progress.js';

export function addOptions(command: Command, keys: readonly OptionKey[]): void {
  for (const key of keys) {
    const spec = OPTIONS[key];
    // Lists (widths, tiers) say their default in their description, if they have one.
    const shown = typeof spec.defaultValue === 'boolean' || typeof spec.defaultValue === 'object' || spec.defaultValue === '' ? '' : ` (default: ${String(spec.defaultValue)})`;
    command.addOption(new Option(spec.flag, `${spec.description}${shown}; env ${spec.env}`));
  }
}

/** The command's options, flag > HERBDL_* > default, frozen. */
export function optionValues<K extends OptionKey>(command: Command, keys: readonly K[]): OptionValues<K> {
  const given: Record<string, unknown> = {};
  const parsed = command.opts();
  for (const key of keys) {
    const name = attributeName(OPTIONS[key].flag);
    // Commander fills in implied values (true for --no-x); only what the user typed counts as a flag.
    if (command.getOptionValueSource(name) === 'cli') given[name] = parsed[name];
  }
  return resolveOptions(keys, given);
}

/** Prints a command's summary (one JSON object with --json, else its lines); an interrupted one exits 130. */
export function report<T extends { readonly interrupted: boolean }>(summary: T, json: boolean, lines: (s: T) => string[]): void {
  process.stdout.write(json ? JSON.stringify(summary) + '\n' : lines(summary).join('\n') + '\n');
  if (summary.interrupted) process.exitCode = EXIT_INTERRUPTED;
}

/**
 * A long command's run: `work` gets a stop signal (Ctrl-C, SIGTERM) and, on
 * a terminal, a progress callback drawn as a live line of `format` with the
 * `values` a summary gives; then its report.
 */
export async function runWithLiveLine<S extends { readonly interrupted: boolean; readonly elapsedMs: number }>(
  format: string,
  options: { readonly progress: boolean; readonly json: boolean },
  work: (signal: AbortSignal, onProgress: ((s: S) => void) | undefined) => Promise<S>,
  values: (s: S, perSecond: (n: number) => string) => Record<string, string>,
  lines: (s: S) => string[],
): Promise<void> {
  const bar = progressBar(format, options.progress);
  try {
    const onProgress = !bar.drawn ? undefined : (s: S) => bar.update(0, 0, values(s, (n) => formatCount(Math.round(n / Math.max(s.elapsedMs / 1000, 0.001)))));
    const summary = await interruptible((signal) => work(signal, onProgress));
    bar.stop();
    report(summary, options.json, lines);
  } finally {
    bar.stop();
  }
}

/** What derive, verify and prune say, once, when what is left are gbifIDs other workers hold (done-pass.ts). */
export function sayWaiting(held: number): void {
  const them = held === 1 ? '1 done gbifID is' : `${formatCount(held)} done gbifIDs are`;
  process.stderr.write(`${process.stderr.isTTY ? '\n' : ''}herbdl: ${them} held by other workers (one stopped with -9 holds its own until its lease ends): waiting to take them\n`);
}

/**
 * Runs `work` with an AbortSignal raised by the first Ctrl-C (or SIGTERM, or
 * SIGHUP: the terminal of an ssh session that dropped), so it can stop
 * cleanly; a second Ctrl-C exits at once. A hang-up used to end the process
 * as kill -9 does, leaving a shared ledger's claims to wait out the lease.
 */
export async function interruptible<T>(work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  // Every request in flight listens on it (fetch-image.ts) until it ends: up to --concurrency at once, none left behind.
  // Past 10, Node warned of a leak on stderr (a recheck at its default of 64 did, each time).
  setMaxListeners(0, controller.signal);
  const onSignal = () => {
    if (controller.signal.aborted) process.exit(EXIT_INTERRUPTED);
    process.stderr.write('\nherbdl: stopping cleanly (Ctrl-C again to quit at once)\n');
    controller.abort();
  };
  const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
  for (const signal of signals) process.on(signal, onSignal);
  try {
    return await work(controller.signal);
  } finally {
    for (const signal of signals) process.off(signal, onSignal);
  }
}

/**
 * For a command that makes garbage fast with little live (adopt checking
 * thousands of files a second, a Parquet export encoding row groups): V8
 * lets the main thread's heap grow to about four times what is live before
 * a full collection. Growth of 30% over what is live (a V8 flag read each
 * time it sets the next limit) took 20 to 30 MB off adopt's peak RSS
 * (bench:adopt) and 361 -> 232 MB off a Parquet export of 2M images, at
 * the same speed.
 */
export function keepHeapNearLive(): void {
  setFlagsFromString('--heap-growing-percent=30');
}
