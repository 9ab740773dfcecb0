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
  /**
   * Per kept image, its URL and creator as UTF-8, one after the other: text
   * k (the URL of image k / 2, or its creator) ends at textEnds[k] and
   * starts where text k - 1 ends. Bytes, not strings: moved to the main
   * thread, not copied twice, and written to PostgreSQL's COPY as they are.
   */
  readonly textBytes: Uint8Array;
  readonly textEnds: Int32Array;
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
  /** Per reply: the texts kept, their ends in UTF-8 bytes, and whether every one is ASCII. */
  private pieces: string[] = [];
  private textEnds = new Int32Array(0);
  private textAt = 0;
  private allAscii = true;
  /** Texts kept: two per image, its URL then its creator. */
  private texts = 0;
  private count = 0;
  /** The chunk being read, when it is all ASCII. */
  private asciiChunk: Uint8Array | undefined;

  constructor(private readonly columns: ColumnMap) {
    this.ends = new Int32Array(columns.count);
    this.kindColumns = stretch([columns.type, columns.format]);
    this.rightsColumns = stretch([columns.license, columns.rightsHolder, columns.publisher]);
    this.forget();
  }

  /**
   * Classifies chunks handed over together (one message each way for
   * several): one reply for all of them, in order. Each is decoded on its
   * own, so its text stays an ordinary young-generation string.
   */
  classify(...chunks: Uint8Array[]): ClassifyReply {
    const restart = this.numbering.full;
    if (restart) {
      this.numbering = new Numbering();
      this.forget();
    }
    // Typed arrays are moved to the main thread, so each reply has its own; sized for rows of about 100 bytes, grown if shorter.
    this.count = 0;
    this.allocate((chunks.reduce((sum, chunk) => sum + chunk.length, 0) >> 6) + 16);
    this.textAt = 0;
    this.allAscii = true;
    this.texts = 0;
    const skipped = SKIP_REASONS.map(() => 0);
    let rows = 0;
    for (const chunk of chunks) rows += this.classifyOne(chunk, skipped);
    const fresh = this.numbering.take();
    return {
      rows,
      skipped,
      count: this.count,
      gbifIds: this.gbifIds,
      urlHashes: this.urlHashes,
      hosts: this.hosts,
      attributions: this.attributions,
      textBytes: this.textBytes(),
      textEnds: this.textEnds,
      restart,
      newHosts: fresh.hosts,
      newAttributions: fresh.attributions,
    };
  }

  /** Reads one chunk's lines into the reply being filled, counting skips; returns its rows. */
  private classifyOne(chunk: Uint8Array, skipped: number[]): number {
    // In an all-ASCII chunk a character is a byte: stretches are looked up by their bytes (span-numbers.ts).
    const ascii = isAscii(chunk) ? chunk : undefined;
    for (const numbers of [this.kinds, this.rights, this.hostNames]) numbers.chunk(ascii);
    this.asciiChunk = ascii;
    const text = decoder.decode(chunk);
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
    return rows;
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
    this.keep(gbifId, url.hash, host, attribution);
    this.keepText(text, urlStart, urlEnd);
    if (columns.creator < 0) this.keepString('');
    else this.keepText(text, this.from(columns.creator), ends[columns.creator] as number);
    return KEPT;
  }

  private readByReference(line: string): number {
    const row = classifyRow(line.split('\t'), this.columns);
    if (typeof row === 'string') return REASON_INDEX.get(row) as number;
    this.keep(row.gbifId, urlHash(row.url), this.numbering.host(row.host), this.numbering.attribution(row.attribution));
    this.keepString(row.url);
    this.keepString(row.creator);
    return KEPT;
  }

  private allocate(capacity: number): void {
    const kept = this.count;
    const gbifIds = new Float64Array(capacity);
    const urlHashes = new Float64Array(capacity);
    const hosts = new Int32Array(capacity);
    const attributions = new Int32Array(capacity);
    const textEnds = new Int32Array(capacity * 2);
    if (kept > 0) {
      gbifIds.set(this.gbifIds.subarray(0, kept));
      urlHashes.set(this.urlHashes.subarray(0, kept));
      hosts.set(this.hosts.subarray(0, kept));
      attributions.set(this.attributions.subarray(0, kept));
      textEnds.set(this.textEnds.subarray(0, kept * 2));
    }
    this.gbifIds = gbifIds;
    this.urlHashes = urlHashes;
    this.hosts = hosts;
    this.attributions = attributions;
    this.textEnds = textEnds;
  }

  /** Keeps an image; its URL and creator follow (keepText, keepString). */
  private keep(gbifId: number, hash: number, host: number, attribution: number): void {
    if (this.count === this.gbifIds.length) this.allocate(this.count * 2);
    const i = this.count++;
    this.gbifIds[i] = gbifId;
    this.urlHashes[i] = hash;
    this.hosts[i] = host;
    this.attributions[i] = attribution;
  }

  /** The next text: text[start, end) of the current line. */
  private keepText(text: string, start: number, end: number): void {
    // In an all-ASCII chunk a character is a byte.
    if (!this.asciiChunk) return this.keepString(text.slice(start, end));
    this.pieces.push(text.slice(start, end));
    this.textEnds[this.texts++] = this.textAt += end - start;
  }

  private keepString(s: string): void {
    this.pieces.push(s);
    // Not taken from the chunk: a URL read by the reference may be normalised, so it is measured.
    const bytes = Buffer.byteLength(s);
    if (bytes !== s.length) this.allAscii = false;
    this.textEnds[this.texts++] = this.textAt += bytes;
  }

  /**
   * The texts kept, as UTF-8 in memory of their own (to be moved): joined,
   * then written in one call (copying each into place took longer).
   */
  private textBytes(): Uint8Array {
    const bytes = Buffer.allocUnsafeSlow(this.textAt);
    bytes.write(this.pieces.join(''), 0, this.allAscii ? 'latin1' : 'utf8');
    this.pieces = [];
    return bytes;
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
