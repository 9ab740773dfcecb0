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

const kSnapshotRefused = brand('SnapshotRefused');
/**
 * A snapshot that would remove more of the ledger's images than
 * --max-removal allows: most likely another query's export. Nothing was
 * removed. Ingest says it of the files it read, as bad input (exit 3).
 */
export class SnapshotRefusedError extends HerbdlError {
  readonly [kSnapshotRefused] = true;
  override readonly exitCode = 3;
  constructor(
    readonly removing: number,
    readonly images: number,
    readonly maxRemoval: number,
  ) {
    const percent = (n: number) => `${Math.round(100 * n)}%`;
    super(
      `as a snapshot it lacks ${percent(removing / images)} of the ledger's images (${removing.toLocaleString('en-US')} of ${images.toLocaleString('en-US')}), more than --max-removal ${percent(maxRemoval)}: is it a newer export of the same query? Nothing was removed (the rows it has are in); to apply it all the same, run it again with --max-removal 100`,
      'snapshot_refused',
    );
    this.name = 'SnapshotRefusedError';
  }
  static override [Symbol.hasInstance](value: unknown): boolean {
    return hasBrand(value, kSnapshotRefused);
  }
}

const kTreeDamaged = brand('TreeDamaged');
/**
 * The tree lacks a done gbifID's file or holds one damaged: verify found
 * such files and was not asked to repair them, or pack met one. The tree
 * breaks the ledger's promise, which a script (a cron job after a copy, a
 * check before training) must see: exit 5, as fsck tells errors left
 * uncorrected from its other failures.
 */
export class TreeDamagedError extends HerbdlError {
  readonly [kTreeDamaged] = true;
  override readonly exitCode = 5;
  constructor(message: string) {
    super(message, 'tree_damaged');
    this.name = 'TreeDamagedError';
  }
  static override [Symbol.hasInstance](value: unknown): boolean {
    return hasBrand(value, kTreeDamaged);
  }
}

const kSetBusy = brand('SetBusy');
/**
 * A pack's set folder that another pack is writing (pack/set-lock.ts): one
 * pack at a time per folder. Exit 4, as a ledger that a run holds.
 */
export class SetBusyError extends HerbdlError {
  readonly [kSetBusy] = true;
  override readonly exitCode = 4;
  constructor(message: string) {
    super(message, 'set_busy');
    this.name = 'SetBusyError';
  }
  static override [Symbol.hasInstance](value: unknown): boolean {
    return hasBrand(value, kSetBusy);
  }
}

/** Exit code for a command stopped by Ctrl-C (128 + SIGINT), as shells expect. */
export const EXIT_INTERRUPTED = 130;

/*
 * Download failures, named by what the scheduler should do with them. Each
 * carries the code the ledger stores (http_404, timeout, not_image, ...).
 */

/** What the scheduler does with a failure. */
export type FailureKind = 'permanent' | 'retryable' | 'throttled' | 'host_down';

const kFetchError = brand('FetchError');
export abstract class FetchError extends HerbdlError {
  readonly [kFetchError] = true;
  abstract readonly kind: FailureKind;
  readonly httpStatus: number | undefined;
  constructor(message: string, code: string, httpStatus?: number, options?: { cause?: unknown }) {
    super(message, code, options);
    this.httpStatus = httpStatus;
  }
  static override [Symbol.hasInstance](value: unknown): boolean {
    return hasBrand(value, kFetchError);
  }
}

const kPermanentError = brand('PermanentError');
/** Will fail the same way again (404, 410, 403, 401, not an image, too large): the gbifID fails. */
export class PermanentError extends FetchError {
  readonly [kPermanentError] = true;
  readonly kind = 'permanent';
  constructor(message: string, code: string, httpStatus?: number, options?: { cause?: unknown }) {
    super(message, code, httpStatus, options);
    this.name = 'PermanentError';
  }
  static override [Symbol.hasInstance](value: unknown): boolean {
    return hasBrand(value, kPermanentError);
  }
}

const kRetryableError = brand('RetryableError');
/** May succeed later (5xx, reset, timeout, short body): retry with backoff, up to --retries. */
export class RetryableError extends FetchError {
  readonly [kRetryableError] = true;
  readonly kind: FailureKind = 'retryable';
  constructor(message: string, code: string, httpStatus?: number, options?: { cause?: unknown }) {
    super(message, code, httpStatus, options);
    this.name = 'RetryableError';
  }
  static override [Symbol.hasInstance](value: unknown): boolean {
    return hasBrand(value, kRetryableError);
  }
}

const kThrottledError = brand('ThrottledError');
/** The host asked us to slow down (429, 503 with Retry-After): no request to it before retryAt. */
export class ThrottledError extends FetchError {
  readonly [kThrottledError] = true;
  readonly kind = 'throttled';
  /** Epoch ms from Retry-After, or undefined when the host gave none. */
  readonly retryAt: number | undefined;
  constructor(message: string, code: string, httpStatus: number, retryAt: number | undefined) {
    super(message, code, httpStatus);
    this.name = 'ThrottledError';
    this.retryAt = retryAt;
  }
  static override [Symbol.hasInstance](value: unknown): boolean {
    return hasBrand(value, kThrottledError);
  }
}

const kHostDownError = brand('HostDownError');
/** The host could not be reached (refused, DNS, connect timeout): retryable, and it cools the host down. */
export class HostDownError extends RetryableError {
  readonly [kHostDownError] = true;
  override readonly kind = 'host_down';
  constructor(message: string, code: string, options?: { cause?: unknown }) {
    super(message, code, undefined, options);
    this.name = 'HostDownError';
  }
  static override [Symbol.hasInstance](value: unknown): boolean {
    return hasBrand(value, kHostDownError);
  }
}

/**
 * The errno code of an error the file system raised (ENOSPC, EACCES,
 * ENOTDIR...), or undefined: such an error is this machine's problem, never
 * an image's or a host's.
 */
export function fileSystemErrno(err: unknown): string | undefined {
  if (err instanceof HerbdlError) return undefined;
  const code = (err as { code?: unknown } | null | undefined)?.code;
  return typeof code === 'string' && /^E[A-Z]+$/.test(code) ? code : undefined;
}

/** A file-system error that says the disk is full: freeing space (not fixing anything) is what lets the command go on. */
export function isOutOfSpace(err: unknown): boolean {
  const errno = fileSystemErrno(err);
  return errno === 'ENOSPC' || errno === 'EDQUOT';
}

/**
 * The same error, naming the file it was about: a write through an open file
 * (a body's temporary, a file written whole) fails with only
 * `ENOSPC: no space left on device, write`, and a full disk must be found.
 */
export function namingPath(err: unknown, path: string): unknown {
  if (fileSystemErrno(err) === undefined) return err;
  const e = err as Error & { path?: string };
  if (e.path === undefined) e.path = path;
  if (!e.message.includes(path)) e.message = `${e.message} '${path}'`;
  return e;
}

/** What libvips says when the system refused its write, as the errno code Node would give. */
const VIPS_SYSTEM_ERRORS: Record<string, string> = {
  'No space left on device': 'ENOSPC',
  'Disk quota exceeded': 'EDQUOT',
  'Read-only file system': 'EROFS',
  'Permission denied': 'EACCES',
  'Input/output error': 'EIO',
  'File too large': 'EFBIG',
};

/**
 * A libvips error that is the file system's refusal (it writes a converted
 * image or a derivative and the disk is full), as a file-system error:
 * otherwise it reads as an image that does not decode, and a gbifID fails
 * for good because this machine's disk filled up.
 */
export function vipsSystemError(err: unknown, path: string): Error | undefined {
  const message = (err as Error | undefined)?.message;
  const said = typeof message === 'string' ? /system error: ([^\n]+)/.exec(message)?.[1]?.trim() : undefined;
  const code = said === undefined ? undefined : VIPS_SYSTEM_ERRORS[said];
  if (said === undefined || code === undefined) return undefined;
  return Object.assign(new Error(`${code}: ${said.toLowerCase()}, write '${path}'`, { cause: err }), { code, path });
}

/**
 * What a ledger's storage refused, in words, or undefined: a SQLite file whose
 * disk is full, read-only or failing, or a PostgreSQL server whose disk is
 * (SQLSTATE class 53 and 58, 25006), or that cancelled a statement or found
 * the role lacking a privilege (57014, 42501). Nothing of the failed
 * transaction was committed; what was committed before stays.
 */
export function ledgerRefusal(err: unknown): { readonly what: string; readonly full: boolean } | undefined {
  const code = (err as { code?: unknown } | null | undefined)?.code;
  if (typeof code !== 'string') return undefined;
  const say = (what: string, full = false) => ({ what, full });
  if (code === 'SQLITE_FULL') return say("the ledger's disk is full", true);
  if (code.startsWith('SQLITE_IOERR')) return say("the ledger's disk failed a read or write");
  if (code.startsWith('SQLITE_READONLY')) return say('the ledger file cannot be written');
  if (code === '53100') return say("the ledger's server has no disk space left", true);
  if (code === '53200') return say("the ledger's server is out of memory");
  if (code === '58030') return say("the ledger's server failed a read or write on its disk");
  if (code === '25006') return say("the ledger's server accepts no writes (a standby, or a read-only database)");
  // Said by the server of a statement herbdl's sessions had no reason to expect it for (connect.ts sets the timeouts aside).
  if (code === '57014') return say("the ledger's server cancelled a statement (pg_cancel_backend, or a timeout set for this role)");
  if (code === '42501') return say("the ledger's role lacks a privilege on its tables");
  return undefined;
}

/**
 * Whether an error says the server at the other end of a connection went
 * away (a restart, a failover, a dropped connection) or had no connection to
 * give (too many clients), not that what was sent was wrong: what failed never
 * ran. In practice the shared ledger's server: a download's network failures
 * are classified per image and never reach the top.
 */
export function isConnectionLoss(err: unknown): boolean {
  const { code, message } = (err ?? {}) as { code?: unknown; message?: unknown };
  if (typeof code === 'string') {
    if (['ECONNRESET', 'ECONNREFUSED', 'ECONNABORTED', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENETDOWN', 'EAI_AGAIN'].includes(code)) return true;
    // connection_exception; admin_shutdown, crash_shutdown, cannot_connect_now (a restart, a failover); too_many_connections.
    if (code.startsWith('08') || code === '57P01' || code === '57P02' || code === '57P03' || code === '53300') return true;
  }
  return typeof message === 'string' && /^(Connection terminated|Client has encountered a connection error|Client was closed|timeout exceeded when trying to connect)/.test(message);
}
