/**
 * Every error herbdl raises on purpose lives here, each with a stable,
 * machine-readable `code`. Codes are what the ledger stores and what scripts
 * match on; messages are for people and may change.
 *
 * As in undici, `instanceof` is answered by a registered symbol rather than the
 * prototype chain, so it holds across two copies of this module (a global
 * install next to a local one, or dist/ next to src/ under a test runner).
 */

const kHerbdlError = Symbol.for('herbdl.error');

function brand(name: string): symbol {
  return Symbol.for(`herbdl.error.${name}`);
}

function hasBrand(value: unknown, key: symbol): boolean {
  return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[key] === true;
}

export class HerbdlError extends Error {
  readonly code: string;
  readonly [kHerbdlError] = true;
  /** Process exit code when this error ends a command. */
  readonly exitCode: number = 1;

  constructor(message: string, code: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'HerbdlError';
    this.code = code;
  }

  static override [Symbol.hasInstance](value: unknown): boolean {
    return hasBrand(value, kHerbdlError);
  }
}

const kUsageError = brand('UsageError');
/** The command line or an HERBDL_* variable is wrong. Exit 2. */
export class UsageError extends HerbdlError {
  readonly [kUsageError] = true;
  override readonly exitCode = 2;
  constructor(message: string) {
    super(message, 'usage');
    this.name = 'UsageError';
  }
  static override [Symbol.hasInstance](value: unknown): boolean {
    return hasBrand(value, kUsageError);
  }
}

const kInputError = brand('InputError');
/** An input file cannot be read as GBIF multimedia. Exit 3. The message names the file. */
export class InputError extends HerbdlError {
  readonly [kInputError] = true;
  override readonly exitCode = 3;
  readonly file: string;
  constructor(file: string, problem: string, code = 'bad_input', options?: { cause?: unknown }) {
    super(`${file}: ${problem}`, code, options);
    this.name = 'InputError';
    this.file = file;
  }
  static override [Symbol.hasInstance](value: unknown): boolean {
    return hasBrand(value, kInputError);
  }
}

const kLedgerError = brand('LedgerError');
/** The ledger is missing, locked, from a newer herbdl, or not a ledger. Exit 4. */
export class LedgerError extends HerbdlError {
  readonly [kLedgerError] = true;
  override readonly exitCode = 4;
  constructor(message: string, code = 'ledger', options?: { cause?: unknown }) {
    super(message, code, options);
    this.name = 'LedgerError';
  }
  static override [Symbol.hasInstance](value: unknown): boolean {
    return hasBrand(value, kLedgerError);
  }
}

/** Exit code for a command stopped by Ctrl-C (128 + SIGINT), as shells expect. */
export const EXIT_INTERRUPTED = 130;
