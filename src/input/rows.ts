/**
 * Turns one multimedia row into an image for the ledger, or a reason to skip
 * it. Nothing here is fatal: real downloads carry sound files, landing pages
 * and hand-edited IDs, and one odd row must not stop fifty million good ones.
 */
import type { ColumnMap } from './columns.js';

export type SkipReason =
  | 'wrong_column_count'
  | 'invalid_gbif_id'
  | 'not_still_image'
  | 'empty_identifier'
  | 'invalid_url';

export const SKIP_REASONS: readonly SkipReason[] = [
  'wrong_column_count',
  'invalid_gbif_id',
  'not_still_image',
  'empty_identifier',
  'invalid_url',
];

/**
 * What a row says of its image's kind and rights, apart from the creator:
 * repeated across a dataset's rows, so the ledger keeps each once.
 */
export interface Attribution {
  readonly type: string;
  readonly format: string;
  readonly license: string;
  readonly rightsHolder: string;
  readonly publisher: string;
}

// The ASCII unit separator: a TSV field holds no control character that matters here, and never this one in practice.
const UNIT = '\u001f';

export function packAttribution(a: Attribution): string {
  return `${a.type}${UNIT}${a.format}${UNIT}${a.license}${UNIT}${a.rightsHolder}${UNIT}${a.publisher}`;
}

/** A row that is kept: its image, with the attribution still in fields. */
export interface ClassifiedRow {
  readonly gbifId: number;
  readonly url: string;
  readonly host: string;
  readonly creator: string;
  readonly attribution: Attribution;
}

export function unpackAttribution(packed: string): Attribution {
  const [type = '', format = '', license = '', rightsHolder = '', publisher = ''] = packed.split(UNIT);
  return { type, format, license, rightsHolder, publisher };
}

const DIGITS = /^[0-9]+$/;
// Types that are never a still image. Anything else is kept: real rows carry
// IIIF manifests with an empty type or as InteractiveResource.
const NOT_IMAGE_TYPES = new Set(['sound', 'movingimage']);

/**
 * The gbifID as a number, or undefined. It becomes a file path later, so only
 * a positive decimal integer (surrounding white space aside) may pass.
 */
export function parseGbifId(raw: string): number | undefined {
  const trimmed = raw.trim();
  if (!DIGITS.test(trimmed)) return undefined;
  const id = Number(trimmed);
  return id > 0 && Number.isSafeInteger(id) ? id : undefined;
}

export function isNotStillImage(type: string, format: string): boolean {
  if (type !== '') {
    const t = type.trim().toLowerCase();
    // dcmitype URIs (http://purl.org/dc/dcmitype/Sound) count as their last segment.
    if (NOT_IMAGE_TYPES.has(t.slice(t.lastIndexOf('/') + 1))) return true;
  }
  if (format !== '') {
    const f = format.trim().toLowerCase();
    if (f.startsWith('audio/') || f.startsWith('video/') || f === 'application/pdf') return true;
  }
  return false;
}

/**
 * A URL already in the form the WHATWG parser gives (so parsing it would
 * change nothing): lower-case http(s) scheme; a lower-case host of letters,
 * digits, dots and hyphens; a path right after it; no port, user info or
 * fragment; only characters the parser leaves as they are. Most real
 * identifiers are, and parsing is the dearest step of reading a row, so these
 * skip it. (Linear patterns only: this runs on every row.)
 */
const CANONICAL_URL = /^https?:\/\/([a-z0-9.-]+)\/[A-Za-z0-9\-._~!$&()*+,;=:@/%?]*$/;
/** What the parser would still change or refuse: dot segments, punycode, empty labels. */
const NEEDS_PARSING = /\/\.|%2e|xn--|\.\.|:\/\/[.]|\.\//i;
/** A last label the parser reads as an IPv4 number. */
const NUMERIC_LABEL = /(?:^|\.)(?:\d+|0x[0-9a-f]*)$/;

/** The URL in the form the ledger compares, with its host; undefined if it is no absolute http(s) URL. */
export function normaliseUrl(raw: string): { url: string; host: string } | undefined {
  const canonical = CANONICAL_URL.exec(raw);
  if (canonical && !NEEDS_PARSING.test(raw) && !NUMERIC_LABEL.test(canonical[1] as string)) return { url: raw, host: canonical[1] as string };
  let parsed: URL;
  try {
    parsed = new URL(raw);
  } catch {
    return undefined;
  }
  if ((parsed.protocol !== 'http:' && parsed.protocol !== 'https:') || parsed.hostname === '') return undefined;
  if (parsed.port === '0') return undefined;
  return { url: parsed.href, host: parsed.hostname };
}

const field = (fields: string[], i: number): string => (i >= 0 ? (fields[i] as string) : '');

export function classifyRow(fields: string[], cols: ColumnMap): ClassifiedRow | SkipReason {
  if (fields.length !== cols.count) return 'wrong_column_count';
  const gbifId = parseGbifId(fields[cols.gbifId] as string);
  if (gbifId === undefined) return 'invalid_gbif_id';
  const type = field(fields, cols.type);
  const format = field(fields, cols.format);
  if (isNotStillImage(type, format)) return 'not_still_image';
  const identifier = (fields[cols.identifier] as string).trim();
  if (identifier === '') return 'empty_identifier';
  const target = normaliseUrl(identifier);
  if (target === undefined) return 'invalid_url';
  return {
    gbifId,
    url: target.url,
    host: target.host,
    creator: field(fields, cols.creator),
    attribution: {
      type,
      format,
      license: field(fields, cols.license),
      rightsHolder: field(fields, cols.rightsHolder),
      publisher: field(fields, cols.publisher),
    },
  };
}
