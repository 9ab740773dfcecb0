/**
 * Which images a set of shards holds: each shard's keys (`<gbifID>-NN`, a
 * tab and the sha256 the ledger had for the image's stored file, one a line,
 * in the shard's order) in `<shard>.keys` beside it, so a pack that carries
 * a set on adds exactly the done images it lacks, those done since with
 * gbifIDs below its last one (a retry that succeeded) as well as those after
 * it, and can say which images a recheck has replaced since. A shard from
 * before keys were kept has its tar's headers read instead (one 512-byte
 * read per entry, never its images' bytes), and its keys file written then
 * (with no sha256: whether those images changed is not told).
 *
 * Every pack writes its shards from one stream in key order, so a set is a
 * few runs of shards each in key order (one per pack that added late
 * images); their keys are merged back into one ordered stream, one shard's
 * keys in memory per run.
 */
import { closeSync, existsSync, openSync, readFileSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { UsageError } from '../errors.js';
import { imageName } from '../store/layout.js';
import { keyAfter, writeWhole, type ImageKey, type ShardStats } from './shards.js';

const keysName = (shard: string) => shard.replace(/\.tar$/, '.keys');

/** An image a set holds: its key, and the sha256 of its stored file when it was packed (the original's, whatever the width). */
export interface PackedKey extends ImageKey {
  readonly sha256?: string;
}

/** The text of a shard's keys file. */
export function keysText(keys: readonly PackedKey[]): string {
  return keys.map((k) => `${imageName(k.gbifID, k.NN)}${k.sha256 ? `\t${k.sha256}` : ''}\n`).join('');
}

export async function writeKeys(dir: string, shard: string, keys: readonly PackedKey[]): Promise<void> {
  await writeWhole(join(dir, keysName(shard)), keysText(keys));
}

function parseKey(line: string): PackedKey | undefined {
  const m = /^(\d+)-(\d+)(?:\t([0-9a-f]{64}))?$/.exec(line);
  if (!m) return undefined;
  return m[3] ? { gbifID: Number(m[1]), NN: Number(m[2]), sha256: m[3] } : { gbifID: Number(m[1]), NN: Number(m[2]) };
}

/** A NUL-ended field of a tar header. */
const field = (header: Buffer, start: number, length: number) => {
  const raw = header.subarray(start, start + length);
  const end = raw.indexOf(0);
  return raw.toString('utf8', 0, end < 0 ? length : end);
};

/**
 * The image keys of a shard's tar, read from its entries' headers: a
 * `.jpg` entry's name up to its extension (herbdl's names fit a ustar
 * header's: no pax headers to follow).
 */
function keysFromTar(path: string): PackedKey[] {
  const keys: PackedKey[] = [];
  const fd = openSync(path, 'r');
  // Read 4 KB at a time: an image's .json entry, and the next image's header, come in the same read as the .json's header.
  const window = Buffer.alloc(4096);
  let windowStart = 0;
  let windowEnd = 0;
  const headerAt = (offset: number): Buffer | undefined => {
    if (offset < windowStart || offset + 512 > windowEnd) {
      windowStart = offset;
      windowEnd = offset + readSync(fd, window, 0, window.length, offset);
      if (windowEnd - offset < 512) return undefined;
    }
    return window.subarray(offset - windowStart, offset - windowStart + 512);
  };
  const bad = (problem: string) => new UsageError(`${path}: ${problem} (cut short, or not a shard of herbdl's), so which images the set holds cannot be told; pack into a new folder`);
  try {
    for (let offset = 0; ; ) {
      const header = headerAt(offset);
      if (!header) throw bad('the tar ends without its end marker');
      // Every entry has a name: a block that begins with NUL is the end marker, or not a tar.
      if (header[0] === 0) {
        if (header.every((b) => b === 0)) return keys;
        throw bad(`no tar header at byte ${offset}`);
      }
      const size = parseInt(field(header, 124, 12).trim() || '0', 8);
      if (!Number.isFinite(size) || field(header, 257, 5) !== 'ustar') throw bad(`no tar header at byte ${offset}`);
      const name = field(header, 0, 100);
      offset += 512 + Math.ceil(size / 512) * 512;
      if (!name.endsWith('.jpg')) continue;
      const key = parseKey(name.slice(0, -4));
      if (!key) throw bad(`${name} is no herbdl image's name`);
      keys.push(key);
    }
  } finally {
    closeSync(fd);
  }
}

/** A shard's keys: its keys file, or (a shard from before) its tar's headers, then written down. */
export async function shardKeys(dir: string, shard: string): Promise<PackedKey[]> {
  const file = join(dir, keysName(shard));
  if (existsSync(file)) {
    const text = readFileSync(file, 'utf8');
    const keys: PackedKey[] = [];
    for (const line of text.split('\n')) {
      if (line === '') continue;
      const key = parseKey(line);
      if (!key) throw new UsageError(`${file}: "${line}" is no image key; remove the file and pack again, which reads the shard's keys from its tar`);
      keys.push(key);
    }
    return keys;
  }
  const keys = keysFromTar(join(dir, shard));
  await writeKeys(dir, shard, keys);
  return keys;
}

/** The set's shards as runs in key order: a shard that starts before the last one ended begins a new run. */
export function shardRuns(shards: readonly ShardStats[]): ShardStats[][] {
  const runs: ShardStats[][] = [];
  let last: ImageKey | undefined;
  for (const shard of shards) {
    if (!last || !keyAfter(shard.first, last)) runs.push([]);
    runs[runs.length - 1]?.push(shard);
    last = shard.last;
  }
  return runs;
}

/** One run's keys in order, a shard's keys read once the one before is used up. */
class RunCursor {
  private keys: PackedKey[] = [];
  private at = 0;
  private next = 0;

  constructor(
    private readonly dir: string,
    private readonly run: readonly ShardStats[],
  ) {}

  /** Its next key, or undefined once the run is used up. */
  head(): PackedKey | undefined {
    return this.keys[this.at];
  }

  /** Moves past the head: a promise only when the next shard's keys must be read. */
  step(): Promise<void> | undefined {
    this.at++;
    return this.at < this.keys.length ? undefined : this.load();
  }

  async load(): Promise<void> {
    this.keys = [];
    this.at = 0;
    // A shard with no keys (none is written, but a file emptied by hand) is passed over.
    while (this.keys.length === 0 && this.next < this.run.length) this.keys = await shardKeys(this.dir, (this.run[this.next++] as ShardStats).shard);
  }
}

/**
 * The keys a set holds, asked in key order: `has` says whether the set
 * holds an image, counting as `stale` those it holds that were passed over
 * (no longer done in the ledger), and as `changed` those it holds in
 * another version than the ledger's now; `end` counts the ones left after
 * the last. Synchronous but when a shard's keys are to be read, as this is
 * asked once per done image.
 */
export class PackedSet {
  /** Keys the set holds that the ledger's done images went past: removed, or reopened, since they were packed. */
  stale = 0;
  /** Images the set holds whose stored file the ledger now has another sha256 for: replaced by a recheck since. */
  changed = 0;

  private constructor(private readonly runs: RunCursor[]) {}

  static async open(dir: string, shards: readonly ShardStats[]): Promise<PackedSet> {
    const runs = shardRuns(shards).map((run) => new RunCursor(dir, run));
    for (const run of runs) await run.load();
    return new PackedSet(runs);
  }

  /** The run whose head is least, or undefined when every run is used up (a set has few runs: each is looked at). */
  private least(): RunCursor | undefined {
    let least: RunCursor | undefined;
    for (const run of this.runs) {
      const head = run.head();
      if (head && (!least || keyAfter(least.head() as ImageKey, head))) least = run;
    }
    return least;
  }

  /** Whether the set holds `key`; `sha256` is the ledger's for its stored file now. */
  has(key: ImageKey, sha256?: string | null): boolean | Promise<boolean> {
    for (;;) {
      const run = this.least();
      const head = run?.head();
      if (!run || !head || keyAfter(head, key)) return false;
      const same = head.gbifID === key.gbifID && head.NN === key.NN;
      if (!same) this.stale++;
      else if (head.sha256 && sha256 && head.sha256 !== sha256) this.changed++;
      const stepped = run.step();
      if (same) return stepped ? stepped.then(() => true) : true;
      if (stepped) return stepped.then(() => this.has(key, sha256));
    }
  }

  /** Counts what is left after the ledger's last done image as stale. */
  async end(): Promise<void> {
    for (let run = this.least(); run; run = this.least()) {
      this.stale++;
      await run.step();
    }
  }
}
