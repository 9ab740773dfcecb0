/** The progress bar: drawn on a terminal, absent otherwise (pipes stay clean). */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatBytes } from '../src/cli/progress.js';
import { BIN, FIXTURES, herbdl, tempDir } from './helpers/cli.js';

// util-linux `script` gives the CLI a real pseudo-terminal.
function underTerminal(args: string[]): string {
  const command = [process.execPath, BIN, ...args].map((a) => `'${a}'`).join(' ');
  const r = spawnSync('script', ['-qec', command, '/dev/null'], { encoding: 'utf8', timeout: 60_000 });
  if (r.error) throw r.error;
  expect(r.status).toBe(0);
  return r.stdout;
}

describe('ingest progress', () => {
  const dir = tempDir();
  const fixture = join(FIXTURES, 'multimedia.txt');

  it('is drawn on stderr when it is a terminal: bytes of total, rows/s, ETA', () => {
    const screen = underTerminal(['ingest', fixture, '--db', join(dir, 'tty.db')]);
    expect(screen).toMatch(/100% 4\.\d KiB of 4\.\d KiB \| 30 rows \| [\d,]+ rows\/s \| ETA/);
  });

  it('is not drawn with --no-progress', () => {
    const screen = underTerminal(['ingest', fixture, '--db', join(dir, 'tty2.db'), '--no-progress']);
    expect(screen).not.toMatch(/rows\/s \|/);
    expect(screen).toMatch(/rows read\s+30/);
  });

  it('is silent when stderr is not a terminal', () => {
    const r = herbdl(['ingest', fixture, '--db', join(dir, 'pipe.db')]);
    expect(r.status).toBe(0);
    expect(r.stderr).toBe('');
  });
});

describe('sizes and rates', () => {
  it('says a rate under a KiB a second in whole bytes', () => {
    // A run's summary once said `16.041438290252128 B/s`.
    expect(formatBytes(16.041438290252128)).toBe('16 B');
    expect(formatBytes(1023.6)).toBe('1.0 KiB');
    expect(formatBytes(1536)).toBe('1.5 KiB');
  });
});
