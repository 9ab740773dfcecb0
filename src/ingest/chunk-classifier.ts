/**
 * Classifies a chunk of whole lines into the reply the ingest worker sends:
 * the parsing thread's whole job, and the step that sets ingest's pace.
 *
 * The usual row is read in place: field bounds are found with indexOf, the
 * gbifID and URL are checked where they lie (in-place.ts), and a field equal
 * to the same field of the row before reuses its number without being cut
 * out or hashed (a dataset's rows repeat their type, licence, publisher and
 * host). Any row the fast readers are unsure of goes to classifyRow, the
 * reference, so both ways give the same answer (a test holds them to it).
 */
import { isAscii } from 'node:buffer';
import type { ColumnMap } from '../input/columns.js';
import { plainGbifId, readCanonicalUrl, UNSURE, type UrlInPlace } from '../input/in-place.js';
import { classifyRow, isNotStillImage, packAttribution, SKIP_REASONS, type SkipReason } from '../input/rows.js';
import { urlHash } from '../input/url-hash.js';
import { Numbering } from './numbering.js';
import { SpanNumbers } from './span-numbers.js';

export interface ClassifyReply {
  /** Non-empty lines in the chunk: every row, kept or skipped. */
  readonly rows: number;
  /** Skipped rows by reason, in SKIP_REASONS order. */
  readonly skipped: number[];
  /** Kept images; the arrays below hold at least this many. */
  readonly count: number;
  readonly gbifIds: Float64Array;
  readonly urlHashes: Float64Array;
  /** Per kept image, the number of its host and of its attribution. */
  readonly hosts: Int32Array;
  readonly attributions: Int32Array;
  /** Per kept image, its URL and creator, all joined by tabs (no field holds one). */
  readonly texts: string;
  /** The numbering of hosts and attributions started again before this chunk (it is bounded). */
  readonly restart: boolean;
  /** Hosts first numbered in this chunk, in number order. */
  readonly newHosts: string[];
  /** Packed attributions first numbered in this chunk, in number order. */
  readonly newAttributions: string[];
}

const REASON_INDEX = new Map<SkipReason, number>(SKIP_REASONS.map((r, i) => [r, i]));
const NOT_STILL_IMAGE = REASON_INDEX.get('not_still_image') as number;
const EMPTY_IDENTIFIER = REASON_INDEX.get('empty_identifier') as number;
const KEPT = -2; // not UNSURE (-1), not a skip reason (0 and up)
const decoder = new TextDecoder('utf-8');

/** The columns from the first to the last of those the file has; undefined if it has none. */
function stretch(columns: readonly number[]): [number, number] | undefined {
  const present = columns.filter((c) => c >= 0);
  return present.length === 0 ? undefined : [Math.min(...present), Math.max(...present)];
}

export class ChunkClassifier {
  private numbering = new Numbering();
  /** Where each field of the current line ends (at its tab, or the line's end), and where the line starts. */
  private readonly ends: Int32Array;
  private lineStart = 0;
  private readonly url: UrlInPlace = { hostStart: 0, hostEnd: 0, hash: 0 };
  /** Where a field of the current line starts. */
  private readonly from = (column: number): number => (column === 0 ? this.lineStart : (this.ends[column - 1] as number) + 1);
  /** The first and last column of the kind (type, format) and rights (licence, rights holder, publisher) stretches. */
  private readonly kindColumns: readonly [number, number] | undefined;
  private readonly rightsColumns: readonly [number, number] | undefined;
  private kinds!: SpanNumbers;
  private rights!: SpanNumbers;
  private hostNames!: SpanNumbers;
  /** By kind number: whether the kind is clearly not a still image. */
  private notStill: boolean[] = [];
  // Per chunk: the reply being filled.
  private gbifIds = new Float64Array(0);
  private urlHashes = new Float64Array(0);
  private hosts = new Int32Array(0);
  private attributions = new Int32Array(0);
  private texts: string[] = [];
  private count = 0;

  constructor(private readonly columns: ColumnMap) {
    this.ends = new Int32Array(columns.count);
    this.kindColumns = stretch([columns.type, columns.format]);
    this.rightsColumns = stretch([columns.license, columns.rightsHolder, columns.publisher]);
    this.forget();
  }

  classify(chunk: Uint8Array): ClassifyReply {
    const restart = this.numbering.full;
    if (restart) {
      this.numbering = new Numbering();
      this.forget();
    }
    // In an all-ASCII chunk a character is a byte: stretches are looked up by their bytes (span-numbers.ts).
    const ascii = isAscii(chunk) ? chunk : undefined;
    for (const numbers of [this.kinds, this.rights, this.hostNames]) numbers.chunk(ascii);
    const text = decoder.decode(chunk);
    // Typed arrays are moved to the main thread, so each chunk has its own; sized for rows of about 100 bytes, grown if shorter.
    this.count = 0;
    this.allocate((chunk.length >> 6) + 16);
    this.texts = [];
    const skipped = SKIP_REASONS.map(() => 0);
    let rows = 0;
    for (let pos = 0; pos < text.length; ) {
      let newline = text.indexOf('\n', pos);
      if (newline < 0) newline = text.length;
      const start = pos;
      const end = newline > start && text.charCodeAt(newline - 1) === 13 ? newline - 1 : newline;
      pos = newline + 1;
      if (end === start) continue;
      rows++;
      let outcome = this.readInPlace(text, start, end);
      if (outcome === UNSURE) outcome = this.readByReference(text.slice(start, end));
      if (outcome !== KEPT) skipped[outcome] = (skipped[outcome] as number) + 1;
    }
    const fresh = this.numbering.take();
    return {
      rows,
      skipped,
      count: this.count,
      gbifIds: this.gbifIds,
      urlHashes: this.urlHashes,
      hosts: this.hosts,
      attributions: this.attributions,
      texts: this.texts.join('\t'),
      restart,
      newHosts: fresh.hosts,
      newAttributions: fresh.attributions,
    };
  }

  /** KEPT, a skip reason's index, or UNSURE. */
  private readInPlace(text: string, start: number, end: number): number {
    const { columns, ends } = this;
    const last = columns.count - 1;
    let at = start;
    for (let i = 0; i < last; i++) {
      const tab = text.indexOf('\t', at);
      if (tab < 0 || tab >= end) return UNSURE;
      ends[i] = tab;
      at = tab + 1;
    }
    const extra = text.indexOf('\t', at);
    if (extra >= 0 && extra < end) return UNSURE;
    ends[last] = end;
    this.lineStart = start;

    const gbifId = plainGbifId(text, this.from(columns.gbifId), ends[columns.gbifId] as number);
    if (gbifId === UNSURE) return UNSURE;
    const kind = this.spanNumber(this.kinds, text, this.kindColumns);
    let notStill = this.notStill[kind];
    if (notStill === undefined) {
      notStill = isNotStillImage(this.field(text, columns.type), this.field(text, columns.format));
      this.notStill[kind] = notStill;
    }
    if (notStill) return NOT_STILL_IMAGE;
    const urlStart = this.from(columns.identifier);
    const urlEnd = ends[columns.identifier] as number;
    if (urlStart === urlEnd) return EMPTY_IDENTIFIER;
    const url = this.url;
    if (!readCanonicalUrl(text, urlStart, urlEnd, url)) return UNSURE;

    const host = this.hostNames.of(text, url.hostStart, url.hostEnd);
    const rights = this.spanNumber(this.rights, text, this.rightsColumns);
    const attribution = this.numbering.attributionOf(kind, rights, () =>
      packAttribution({
        type: this.field(text, columns.type),
        format: this.field(text, columns.format),
        license: this.field(text, columns.license),
        rightsHolder: this.field(text, columns.rightsHolder),
        publisher: this.field(text, columns.publisher),
      }),
    );
    this.keep(gbifId, text.slice(urlStart, urlEnd), url.hash, host, attribution, this.field(text, columns.creator));
    return KEPT;
  }

  private readByReference(line: string): number {
    const row = classifyRow(line.split('\t'), this.columns);
    if (typeof row === 'string') return REASON_INDEX.get(row) as number;
    this.keep(row.gbifId, row.url, urlHash(row.url), this.numbering.host(row.host), this.numbering.attribution(row.attribution), row.creator);
    return KEPT;
  }

  private allocate(capacity: number): void {
    const kept = this.count;
    const gbifIds = new Float64Array(capacity);
    const urlHashes = new Float64Array(capacity);
    const hosts = new Int32Array(capacity);
    const attributions = new Int32Array(capacity);
    if (kept > 0) {
      gbifIds.set(this.gbifIds.subarray(0, kept));
      urlHashes.set(this.urlHashes.subarray(0, kept));
      hosts.set(this.hosts.subarray(0, kept));
      attributions.set(this.attributions.subarray(0, kept));
    }
    this.gbifIds = gbifIds;
    this.urlHashes = urlHashes;
    this.hosts = hosts;
    this.attributions = attributions;
  }

  private keep(gbifId: number, url: string, hash: number, host: number, attribution: number, creator: string): void {
    if (this.count === this.gbifIds.length) this.allocate(this.count * 2);
    const i = this.count++;
    this.gbifIds[i] = gbifId;
    this.urlHashes[i] = hash;
    this.hosts[i] = host;
    this.attributions[i] = attribution;
    this.texts.push(url, creator);
  }

  /** A field of the current line ('' for a column the file does not have). */
  private field(text: string, column: number): string {
    return column < 0 ? '' : text.slice(this.from(column), this.ends[column]);
  }

  /** The number of a stretch of the current line, from the start of its first column to the end of its last. */
  private spanNumber(numbers: SpanNumbers, text: string, span: readonly [number, number] | undefined): number {
    return span === undefined ? numbers.of('', 0, 0) : numbers.of(text, this.from(span[0]), this.ends[span[1]] as number);
  }

  /** What was remembered names numbers of the numbering that just ended. */
  private forget(): void {
    const numbering = this.numbering;
    this.kinds = new SpanNumbers((key) => numbering.kind(key));
    this.rights = new SpanNumbers((key) => numbering.rights(key));
    this.hostNames = new SpanNumbers((key) => numbering.host(key));
    this.notStill = [];
  }
}
