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

function option<T>(flag: string, env: string, defaultValue: T, description: string, parse: (raw: string, where: string) => T): OptionSpec<T> {
  return Object.freeze({ flag, env, defaultValue, description, parse });
}

export const OPTIONS = {
  db: option('--db <path>', 'HERBDL_DB', 'herbdl.db', 'ledger file (SQLite, keep it on a local disk)', text),
  json: option('--json', 'HERBDL_JSON', false, 'print the result as one JSON object on stdout', boolean),
  hosts: option('--hosts <n>', 'HERBDL_HOSTS', 10, 'how many hosts to list, busiest first', integer(0, 100_000)),
  progress: option('--no-progress', 'HERBDL_PROGRESS', true, 'no progress bar, even on a terminal', boolean),
} as const;

export type OptionKey = keyof typeof OPTIONS;
export type OptionValues<K extends OptionKey> = { readonly [P in K]: (typeof OPTIONS)[P]['defaultValue'] };

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
