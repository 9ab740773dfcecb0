/**
 * Every option herbdl takes is declared once here: its flag, its HERBDL_*
 * variable, its default and how its text is checked. Commands pick the options
 * they use by key; values are resolved flag > HERBDL_* > default, validated at
 * the edge, and handed down frozen, so nothing below the CLI parses text.
 */
import { UsageError } from '../errors.js';

export interface OptionSpec<T> {
  /** Flag as commander spells it, e.g. `--db <path>`. */
  readonly flag: string;
  readonly env: string;
  readonly defaultValue: T;
  readonly description: string;
  readonly parse: (raw: string, where: string) => T;
}

function text(raw: string, where: string): string {
  if (raw.trim() === '') throw new UsageError(`${where}: must not be empty`);
  return raw;
}

function integer(min: number, max = Number.MAX_SAFE_INTEGER) {
  return (raw: string, where: string): number => {
    const trimmed = raw.trim();
    if (!/^[0-9]+$/.test(trimmed)) throw new UsageError(`${where}: expected a whole number, got "${raw}"`);
    const value = Number(trimmed);
    if (value < min || value > max) throw new UsageError(`${where}: must be between ${min} and ${max}, got ${value}`);
    return value;
  };
}

function boolean(raw: string, where: string): boolean {
  const v = raw.trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(v)) return true;
  if (['0', 'false', 'no', 'off', ''].includes(v)) return false;
  throw new UsageError(`${where}: expected true or false, got "${raw}"`);
}

function optionalText(raw: string): string {
  return raw.trim();
}

const SIZE_UNITS: Record<string, number> = { '': 1, b: 1, k: 1e3, kb: 1e3, m: 1e6, mb: 1e6, g: 1e9, gb: 1e9, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3 };

/** Bytes, with an optional unit: 200MB, 512KiB, 1048576. */
function size(raw: string, where: string): number {
  const m = /^\s*([0-9]+)\s*([a-z]*)\s*$/i.exec(raw);
  const unit = SIZE_UNITS[(m?.[2] ?? '').toLowerCase()];
  if (!m || unit === undefined) throw new UsageError(`${where}: expected a size such as 200MB, got "${raw}"`);
  const value = Number(m[1]) * unit;
  if (value < 1) throw new UsageError(`${where}: must be at least 1 byte`);
  return value;
}

function oneOf<T extends string>(...values: T[]) {
  return (raw: string, where: string): T => {
    const v = raw.trim().toLowerCase() as T;
    if (!values.includes(v)) throw new UsageError(`${where}: expected one of ${values.join(', ')}, got "${raw}"`);
    return v;
  };
}

/** Derivative widths: whole numbers, comma-separated (256,1024), each 16 to 16384; sorted, no repeats. */
export function widthList(raw: string, where: string): readonly number[] {
  const parts = raw.split(',').map((p) => p.trim()).filter((p) => p !== '');
  const widths = parts.map((p) => integer(16, 16_384)(p, where));
  return Object.freeze([...new Set(widths)].sort((a, b) => a - b));
}

/** One split of a pack (pack/splits.ts places gbifIDs in them). */
export interface Split {
  readonly name: string;
  /** Its share of the gbifIDs, from 0 to 1. */
  readonly share: number;
}

/**
 * Pack splits: `name=percent` pairs, comma-separated (val=5,test=5); a
 * `train` split takes what the others leave unless it is named, and named
 * or not the shares must add up to 100. In the order given, train last.
 */
export function splitList(raw: string, where: string): readonly Split[] {
  const splits: Split[] = [];
  for (const part of raw.split(',').map((p) => p.trim()).filter((p) => p !== '')) {
    const m = /^([a-z][a-z0-9_-]*)=([0-9]+(?:\.[0-9]+)?)$/.exec(part);
    if (!m || Number(m[2]) <= 0) throw new UsageError(`${where}: expected name=percent pairs such as val=5,test=5, got "${part}"`);
    if (splits.some((s) => s.name === m[1])) throw new UsageError(`${where}: ${m[1]} is named twice`);
    splits.push({ name: m[1] as string, share: Number(m[2]) / 100 });
  }
  if (splits.length === 0) return Object.freeze([]);
  const total = splits.reduce((n, s) => n + s.share, 0);
  const train = splits.findIndex((s) => s.name === 'train');
  if (train < 0 && total < 1 - 1e-9) splits.push({ name: 'train', share: 1 - total });
  else if (train >= 0) splits.push(...splits.splice(train, 1));
  const sum = splits.reduce((n, s) => n + s.share, 0);
  if (Math.abs(sum - 1) > 1e-9) throw new UsageError(`${where}: the shares add up to ${Math.round(sum * 10_000) / 100}, not 100`);
  if (splits.length < 2) throw new UsageError(`${where}: one split is the whole set; name at least two, or leave --split out`);
  return Object.freeze(splits.map((s) => Object.freeze(s)));
}

/** The occurrence fields `herbdl labels` keeps unless told: what a classifier trains on, and where a sheet came from. */
export const DEFAULT_LABEL_FIELDS = Object.freeze(['scientificName', 'taxonKey', 'taxonRank', 'kingdom', 'family', 'genus', 'species', 'countryCode', 'institutionCode', 'catalogNumber']);

/** Occurrence fields: Darwin Core terms as a download's header spells them, comma-separated, no repeats. */
export function fieldList(raw: string, where: string): readonly string[] {
  const names = raw.split(',').map((p) => p.trim()).filter((p) => p !== '');
  for (const name of names) if (!/^[A-Za-z][A-Za-z0-9_]*$/.test(name)) throw new UsageError(`${where}: "${name}" is not a field name (Darwin Core terms such as scientificName, family, taxonKey)`);
  if (names.length === 0) throw new UsageError(`${where}: name at least one field`);
  return Object.freeze([...new Set(names)]);
}

const DURATION_UNITS: Record<string, number> = { h: 3_600_000, d: 86_400_000, w: 7 * 86_400_000, m: 30 * 86_400_000, y: 365 * 86_400_000 };

function duration(raw: string, where: string): number {
  const m = /^\s*([0-9]+)\s*([hdwmy])\s*$/.exec(raw);
  if (!m || Number(m[1]) <= 0) throw new UsageError(`${where}: expected a duration such as 7d, 2w, 6m or 2y, got "${raw}"`);
  return Number(m[1]) * (DURATION_UNITS[m[2] as string] as number);
}

/** Recheck tiers: `every<until,...,every` (7d<30d,30d<180d,90d<2y,365d): re-check every `every` while younger than `until`; the last has no end. */
export function tierList(raw: string, where: string): readonly { everyMs: number; untilMs: number }[] {
  const parts = raw.split(',').map((p) => p.trim());
  const tiers = parts.map((part, i) => {
    const [every, until, extra] = part.split('<');
    if (extra !== undefined || every === undefined || (i < parts.length - 1) !== (until !== undefined)) {
      throw new UsageError(`${where}: each tier but the last is every<until (7d<30d), the last only every (365d); got "${part}"`);
    }
    return { everyMs: duration(every, where), untilMs: until === undefined ? Infinity : duration(until, where) };
  });
  for (let i = 1; i < tiers.length - 1; i++) {
    if ((tiers[i] as { untilMs: number }).untilMs <= (tiers[i - 1] as { untilMs: number }).untilMs) throw new UsageError(`${where}: each tier's end must come after the one before it`);
  }
  return Object.freeze(tiers);
}

function option<T>(flag: string, env: string, defaultValue: T, description: string, parse: (raw: string, where: string) => T): OptionSpec<T> {
  return Object.freeze({ flag, env, defaultValue, description, parse });
}

export const OPTIONS = {
  db: option('--db <path|url>', 'HERBDL_DB', 'herbdl.db', 'ledger: a SQLite file on a local disk, or a postgres:// URL shared by many workers', text),
  json: option('--json', 'HERBDL_JSON', false, 'print the result as one JSON object on stdout', boolean),
  hosts: option('--hosts <n>', 'HERBDL_HOSTS', 10, 'how many hosts to list, busiest first (blocked hosts and failures by host: at least 10)', integer(0, 100_000)),
  commitEvery: option('--commit-every <ms>', 'HERBDL_COMMIT_EVERY', 1000, 'milliseconds between ledger commits during ingest: the most a crash takes back', integer(1, 3_600_000)),
  progress: option('--no-progress', 'HERBDL_PROGRESS', true, 'no progress display, even on a terminal', boolean),
  out: option('--out <dir>', 'HERBDL_OUT', 'images', 'folder the images are written to', text),
  concurrency: option('--concurrency <n>', 'HERBDL_CONCURRENCY', 64, 'requests in flight, all hosts together', integer(1, 4096)),
  perHost: option('--per-host <n>', 'HERBDL_PER_HOST', 4, 'requests in flight to one host (polite by default)', integer(1, 1024)),
  timeout: option('--timeout <s>', 'HERBDL_TIMEOUT', 30, 'seconds without response headers, or without body bytes, that fail an attempt', integer(1, 86_400)),
  deadline: option('--deadline <s>', 'HERBDL_DEADLINE', 600, 'seconds one request may take in all', integer(1, 86_400)),
  retries: option('--retries <n>', 'HERBDL_RETRIES', 3, 'attempts for a transient failure within a run', integer(1, 100)),
  breakerThreshold: option('--breaker-threshold <n>', 'HERBDL_BREAKER_THRESHOLD', 500, 'consecutive failures, or refusals (401, 403), that open a host\'s circuit breaker', integer(1, 1_000_000)),
  breakerCooldown: option('--breaker-cooldown <s>', 'HERBDL_BREAKER_COOLDOWN', 600, 'seconds an open breaker waits before one probe request', integer(0, 86_400 * 30)),
  breakerWindow: option('--breaker-window <s>', 'HERBDL_BREAKER_WINDOW', 600, 'seconds of nothing but failures (at least 3) that open a host\'s breaker, however slowly they came', integer(1, 86_400 * 30)),
  sharedWait: option('--shared-wait <s>', 'HERBDL_SHARED_WAIT', 300, 'seconds an image waits for another worker\'s fetch of the same URL (shared ledger) before it is fetched here too', integer(1, 86_400)),
  lease: option('--lease <s>', 'HERBDL_LEASE', 120, 'seconds a worker\'s claims on a shared (PostgreSQL) ledger outlive its last heartbeat', integer(10, 86_400)),
  maxBytes: option('--max-bytes <n>', 'HERBDL_MAX_BYTES', 200_000_000, 'largest body accepted (200MB, 512KiB, or bytes)', size),
  limit: option('--limit <n>', 'HERBDL_LIMIT', 0, 'stop after this many gbifIDs (0: no limit)', integer(0)),
  maxAttempts: option('--max-attempts <n>', 'HERBDL_MAX_ATTEMPTS', 5, 'runs a transiently failed gbifID is taken up again by `run`', integer(1, 1000)),
  userAgent: option('--user-agent <s>', 'HERBDL_USER_AGENT', '', 'added to herbdl\'s own User-Agent (say who you are)', optionalText),
  allowPrivateNetwork: option('--allow-private-network', 'HERBDL_ALLOW_PRIVATE_NETWORK', false, 'allow loopback, private and link-local addresses (tests, intranets)', boolean),
  logFile: option('--log-file <path>', 'HERBDL_LOG_FILE', '', 'write pino JSON log lines here', optionalText),
  host: option('--host <host>', 'HERBDL_HOST', '', 'only gbifIDs with a failure on this host', optionalText),
  jpegQuality: option('--jpeg-quality <q>', 'HERBDL_JPEG_QUALITY', 90, 'quality of the JPEGs herbdl writes: other formats converted, and derivatives', integer(1, 100)),
  derive: option('--derive <widths>', 'HERBDL_DERIVE', [] as readonly number[], 'also write each image at these widths (256,1024: longer edge at most that, never upscaled) under <out>/w<width>/, published with its gbifID', widthList),
  check: option('--check <how>', 'HERBDL_CHECK', 'decode', 'how a JPEG kept as it is is checked: decode (every block of its scans read, or decoded where the scan cannot read it; catches damaged data) or structure (markers end to end; catches bodies cut short, about 3x cheaper on a 400 x 600 sheet, far more on larger ones)', oneOf('decode', 'structure')),
  maxEdge: option('--max-edge <px>', 'HERBDL_MAX_EDGE', 0, 'downscale images whose longer edge is over this (0: keep the size)', integer(0, 1_000_000)),
  format: option('--format <format>', 'HERBDL_FORMAT', 'csv', 'csv, jsonl, or parquet (needs --out-file)', oneOf('csv', 'jsonl', 'parquet')),
  outFile: option('--out-file <path>', 'HERBDL_OUT_FILE', '', 'write here (atomically) instead of stdout', optionalText),
  state: option('--state <state>', 'HERBDL_STATE', 'done', 'which images: done, failed, pending, excluded, removed or all', oneOf('done', 'failed', 'pending', 'excluded', 'removed', 'all')),
  layout: option('--layout <layout>', 'HERBDL_LAYOUT', 'herbdl', "how the tree is laid out: herbdl (<id[:3]>/<id[3:6]>/<id>-NN.jpg) or flat (<gbifID>.jpg, each gbifID's first image)", oneOf('herbdl', 'flat')),
  adoptOut: option('--out <dir>', 'HERBDL_OUT', '', 'the images folder of later runs: flat files are linked into its layout (default: the tree itself, for --layout herbdl)', optionalText),
  trustJpeg: option('--trust-jpeg', 'HERBDL_TRUST_JPEG', false, "check a JPEG's markers end to end instead of reading its scans (about 3x cheaper on a 400 x 600 sheet; misses damage inside the image data)", boolean),
  images: option('--images <dir>', 'HERBDL_IMAGES', 'images', "the images folder to read (run's --out)", text),
  packOut: option('--out <dir>', 'HERBDL_PACK_OUT', 'shards', 'the folder the shards, their stats and index.json go to', text),
  packFormat: option('--format <format>', 'HERBDL_PACK_FORMAT', 'webdataset', 'webdataset: tar shards of <gbifID>-NN.jpg and .json', oneOf('webdataset')),
  shardSize: option('--shard-size <n>', 'HERBDL_SHARD_SIZE', 10_000, 'images per shard', integer(1, 10_000_000)),
  split: option('--split <shares>', 'HERBDL_SPLIT', [] as readonly Split[], 'pack into splits by gbifID, each a set in its own folder under --out (val=5,test=5: train takes the rest); a gbifID and all its images in one split, always the same', splitList),
  width: option('--width <px>', 'HERBDL_WIDTH', 0, 'pack the derivative of this width instead of the originals (0: originals)', integer(0, 100_000)),
  fields: option('--fields <names>', 'HERBDL_FIELDS', DEFAULT_LABEL_FIELDS, `occurrence fields to keep per gbifID, comma-separated (default ${DEFAULT_LABEL_FIELDS.join(',')}, those the file has)`, fieldList),
  tiers: option('--tiers <tiers>', 'HERBDL_TIERS', tierList('7d<30d,30d<180d,90d<2y,365d', 'default'), 're-check every <every> while younger than <until>, by time since first stored (default 7d<30d,30d<180d,90d<2y,365d: weekly the first month, monthly to six months, quarterly to two years, yearly after)', tierList),
  budget: option('--budget <n>', 'HERBDL_BUDGET', 0, 'ask the hosts about at most this many images (0: every one due)', integer(0)),
  all: option('--all', 'HERBDL_ALL', false, 'take every stored image as due, whatever its age', boolean),
  plan: option('--plan', 'HERBDL_PLAN', false, 'change nothing: print per tier what falls due per day, and per host whether its measured rate keeps up', boolean),
  dryRun: option('--dry-run', 'HERBDL_DRY_RUN', false, 'change nothing: say what would be removed', boolean),
  list: option('--list', 'HERBDL_LIST', false, 'print each file removed (or, with --dry-run, that would be), one path a line', boolean),
  hash: option('--hash', 'HERBDL_HASH', false, "read every file whole and compare its sha256 with the ledger's, not only its size", boolean),
  repair: option('--repair', 'HERBDL_REPAIR', false, 'a done gbifID with a file missing or damaged becomes pending, for the next run to fetch; damaged files are moved to <out>/.herbdl-rejected/damaged/', boolean),
  after: option('--after <gbifID>', 'HERBDL_AFTER', 0, 'check only the gbifIDs above this one: carries on where an interrupted verify stopped (it says where)', integer(0)),
  problems: option('--list', 'HERBDL_LIST', false, 'print each file missing or damaged, one a line: its path and what is wrong', boolean),
  undo: option('--undo', 'HERBDL_UNDO', false, 'take the gbifIDs of the files off the exclusion list instead: the excluded ones go back in the queue, pending', boolean),
  snapshot: option('--snapshot', 'HERBDL_SNAPSHOT', false, 'the files are the complete current state of the same query (a newer export): what the ledger has and they lack is removed once they are read whole', boolean),
  maxRemoval: option('--max-removal <percent>', 'HERBDL_MAX_REMOVAL', 50, 'a snapshot that would remove more than this percent of the ledger\'s images is refused, nothing removed (another query\'s export?); 100 allows any', integer(0, 100)),
  exclude: option(
    '--exclude <file...>',
    'HERBDL_EXCLUDE',
    [] as readonly string[],
    "first, leave out the gbifIDs these files hold: other datasets' multimedia files (.txt, .gz, GBIF zip) or lists of gbifIDs, one per line (env: paths separated by ':')",
    (raw) => raw.split(':').filter((p) => p.trim() !== ''),
  ),
  error: option('--error <code>', 'HERBDL_ERROR', '', 'only gbifIDs with a failure of this code (http_404, timeout, ...)', optionalText),
} as const;

/** The options `run` and `retry-failed` share. */
export const RUN_OPTION_KEYS = [
  'db',
  'out',
  'concurrency',
  'perHost',
  'timeout',
  'deadline',
  'retries',
  'breakerThreshold',
  'breakerCooldown',
  'breakerWindow',
  'lease',
  'sharedWait',
  'maxBytes',
  'jpegQuality',
  'check',
  'maxEdge',
  'derive',
  'limit',
  'maxAttempts',
  'userAgent',
  'allowPrivateNetwork',
  'logFile',
  'json',
  'progress',
] as const satisfies readonly (keyof typeof OPTIONS)[];

export type OptionKey = keyof typeof OPTIONS;
export type OptionValues<K extends OptionKey> = { readonly [P in K]: ReturnType<(typeof OPTIONS)[P]['parse']> };
export type RunOptions = OptionValues<(typeof RUN_OPTION_KEYS)[number]>;

/** Commander's attribute name for a flag: `--max-bytes <n>` -> maxBytes, `--no-progress` -> progress. */
export function attributeName(flag: string): string {
  const long = flag.split(/[ ,]+/).find((part) => part.startsWith('--')) ?? flag;
  return long
    .replace(/^--(no-)?/, '')
    .replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

/**
 * Resolves `keys` from what commander parsed (`flags`, holding only the flags
 * actually given) and the environment. Throws UsageError naming the flag or
 * variable at fault.
 */
export function resolveOptions<K extends OptionKey>(
  keys: readonly K[],
  flags: Record<string, unknown>,
  env: NodeJS.ProcessEnv = process.env,
): OptionValues<K> {
  const out: Record<string, unknown> = {};
  for (const key of keys) {
    const spec = OPTIONS[key] as OptionSpec<unknown>;
    const given = flags[attributeName(spec.flag)];
    const name = spec.flag.split(' ')[0] as string;
    if (given !== undefined) {
      out[key] = typeof given === 'string' ? spec.parse(given, name) : given;
    } else if (env[spec.env] !== undefined) {
      out[key] = spec.parse(env[spec.env] as string, spec.env);
    } else {
      out[key] = spec.defaultValue;
    }
  }
  return Object.freeze(out) as OptionValues<K>;
}
