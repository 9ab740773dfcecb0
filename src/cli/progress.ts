/**
 * A progress bar on stderr, only when stderr is a terminal: pipes and logs
 * stay clean and scriptable.
 */
import { createRequire } from 'node:module';
import type CliProgress from 'cli-progress';

// Loaded only when a bar is drawn: `status` and friends start faster without it.
const load = (): typeof CliProgress => createRequire(import.meta.url)('cli-progress') as typeof CliProgress;

export interface ProgressBar {
  /** False when nothing is drawn (not a terminal, or --no-progress): callers can skip preparing updates. */
  readonly drawn: boolean;
  update(done: number, total: number, payload: Record<string, string | number>): void;
  stop(): void;
}

const NONE: ProgressBar = { drawn: false, update() {}, stop() {} };

export function progressBar(format: string, enabled: boolean): ProgressBar {
  if (!enabled || !process.stderr.isTTY) return NONE;
  const cliProgress = load();
  const bar = new cliProgress.SingleBar(
    { format, stream: process.stderr, hideCursor: true, clearOnComplete: true, etaBuffer: 50, fps: 5 },
    cliProgress.Presets.shades_classic,
  );
  let started = false;
  return {
    drawn: true,
    update(done, total, payload) {
      if (!started) {
        bar.start(total, done, payload);
        started = true;
      } else {
        bar.setTotal(total);
        bar.update(done, payload);
      }
    },
    stop() {
      if (started) bar.stop();
    },
  };
}

export function formatBytes(n: number): string {
  // A rate (bytes over seconds) is rarely a whole number of bytes.
  if (Math.round(n) < 1024) return `${Math.round(n)} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(1)} ${units[i]}`;
}

export function formatCount(n: number): string {
  return n.toLocaleString('en-US');
}

export interface LiveLine {
  stop(): void;
}

/** Hosts a line names at most: an export's dead hosts are counted in thousands (`status --hosts N` lists more, `--json` all). */
export const LISTED_HOSTS = 10;

/** The first LISTED_HOSTS of `items` (one per host, in the order given), and how many more, with `moreSaid` after. */
export function someHosts(items: readonly string[], moreSaid = ''): string {
  const more = items.length - LISTED_HOSTS;
  return more > 0 ? `${items.slice(0, LISTED_HOSTS).join(', ')} and ${formatCount(more)} more hosts${moreSaid}` : items.join(', ');
}

/** One line on stderr, redrawn twice a second, only on a terminal. */
export function liveLine(enabled: boolean, render: () => string): LiveLine {
  if (!enabled || !process.stderr.isTTY) return { stop() {} };
  let drawn = false;
  const timer = setInterval(() => {
    const text = render();
    if (!text) return;
    process.stderr.write(`\r\x1b[2K${text.slice(0, (process.stderr.columns || 120) - 1)}`);
    drawn = true;
  }, 500);
  timer.unref();
  return {
    stop() {
      clearInterval(timer);
      if (drawn) process.stderr.write('\r\x1b[2K');
      drawn = false;
    },
  };
}
