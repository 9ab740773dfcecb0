/**
 * Turns what went wrong on the wire into one of the errors in errors.ts,
 * with a stable code. Codes come from error codes and HTTP statuses, never
 * from parsing messages.
 */
import { FetchError, HostDownError, PermanentError, RetryableError, ThrottledError } from '../errors.js';

/** Retry-After as epoch ms: seconds or an HTTP date; undefined if absent or unreadable. */
export function parseRetryAfter(value: string | string[] | undefined, now = Date.now()): number | undefined {
  const raw = Array.isArray(value) ? value[0] : value;
  if (!raw) return undefined;
  if (/^\s*\d+\s*$/.test(raw)) return now + Number(raw) * 1000;
  const date = Date.parse(raw);
  return Number.isNaN(date) ? undefined : Math.max(date, now);
}

export function errorForStatus(status: number, retryAfter: string | string[] | undefined): FetchError {
  const code = `http_${status}`;
  const retryAt = parseRetryAfter(retryAfter);
  if (status === 429) return new ThrottledError(`HTTP 429 Too Many Requests`, code, status, retryAt);
  if (status === 503 && retryAt !== undefined) return new ThrottledError(`HTTP 503 with Retry-After`, code, status, retryAt);
  // 501 Not Implemented is an answer, not an outage: an Image API server says it of a size it will not make.
  if (status === 501) return new PermanentError(`HTTP 501 Not Implemented`, code, status);
  if (status >= 500 || status === 408) return new RetryableError(`HTTP ${status}`, code, status);
  return new PermanentError(`HTTP ${status}`, code, status);
}

/** Classifies a thrown error from undici, node:net, dns, zlib or the file system. */
export function classifyError(err: unknown): FetchError {
  if (err instanceof FetchError) return err;
  const e = err as { code?: string; name?: string; message?: string; cause?: unknown };
  if (e?.cause instanceof FetchError) return e.cause;
  const code = e?.code ?? (e?.cause as { code?: string } | undefined)?.code ?? '';
  const message = e?.message ?? String(err);
  switch (code) {
    case 'UND_ERR_HEADERS_TIMEOUT':
    case 'UND_ERR_BODY_TIMEOUT':
      return new RetryableError(message, 'timeout', undefined, { cause: err });
    case 'UND_ERR_CONNECT_TIMEOUT':
    case 'ETIMEDOUT':
      return new HostDownError(message, 'connect_timeout', { cause: err });
    case 'ECONNREFUSED':
      return new HostDownError(message, 'connection_refused', { cause: err });
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    // c-ares (dns-lookup.ts): no DNS server answered, or one answered that it failed.
    case 'ETIMEOUT':
    case 'ESERVFAIL':
    case 'EAI_NONAME':
      return new HostDownError(message, 'dns_failed', { cause: err });
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return new HostDownError(message, 'unreachable', { cause: err });
    case 'ECONNRESET':
    case 'EPIPE':
    case 'UND_ERR_SOCKET':
    case 'UND_ERR_CLOSED':
      return new RetryableError(message, 'connection_reset', undefined, { cause: err });
    case 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH':
    case 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH':
      return new RetryableError(message, 'truncated', undefined, { cause: err });
    case 'Z_DATA_ERROR':
    case 'Z_BUF_ERROR':
    case 'ERR__ERROR_FORMAT_PADDING_1':
      return new RetryableError(message, 'bad_encoding', undefined, { cause: err });
    case 'UND_ERR_INVALID_ARG':
    case 'ERR_INVALID_URL':
      return new PermanentError(message, 'bad_url', undefined, { cause: err });
    default:
      break;
  }
  if (/^(CERT_|ERR_TLS_|DEPTH_ZERO|SELF_SIGNED|UNABLE_TO_)/.test(code)) return new PermanentError(message, 'tls_error', undefined, { cause: err });
  if (e?.name === 'TimeoutError') return new RetryableError(message, 'deadline', undefined, { cause: err });
  return new RetryableError(message, 'network_error', undefined, { cause: err });
}
