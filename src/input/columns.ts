/**
 * Maps a multimedia header to column positions by name. GBIF has shipped more
 * than one column order (2014 and 2017 downloads differ from today's), so a
 * position is never assumed. Names match case-insensitively, and a full term
 * URI (http://purl.org/dc/terms/identifier) counts as its last segment.
 */

export interface ColumnMap {
  readonly count: number;
  readonly gbifId: number;
  readonly identifier: number;
  readonly type: number;
  readonly format: number;
  readonly license: number;
  readonly rightsHolder: number;
  readonly creator: number;
  readonly publisher: number;
}

const WANTED = ['gbifId', 'identifier', 'type', 'format', 'license', 'rightsHolder', 'creator', 'publisher'] as const;
const REQUIRED = ['gbifId', 'identifier'] as const;

function normalise(name: string): string {
  const trimmed = name.trim().replace(/^\uFEFF/, '');
  const term = trimmed.slice(Math.max(trimmed.lastIndexOf('/'), trimmed.lastIndexOf('#')) + 1);
  return term.toLowerCase();
}

/** Column positions, or the problem with the header in words (the caller adds the file name). */
export function mapColumns(header: string[]): ColumnMap | { problem: string } {
  const positions = new Map<string, number>();
  header.forEach((name, i) => {
    const key = normalise(name);
    if (!positions.has(key)) positions.set(key, i);
  });
  const missing = REQUIRED.filter((c) => !positions.has(c.toLowerCase()));
  if (missing.length > 0) {
    const hint = misread(header, positions);
    if (hint) return { problem: hint };
    const shown = header.slice(0, 8).map((h) => JSON.stringify(h.slice(0, 40))).join(', ');
    return {
      problem: `header has no ${missing.map((m) => (m === 'gbifId' ? 'gbifID' : m)).join(' or ')} column (first columns: ${shown}); expected a GBIF multimedia.txt`,
    };
  }
  const map: Record<string, number> = { count: header.length };
  for (const name of WANTED) map[name] = positions.get(name.toLowerCase()) ?? -1;
  return map as unknown as ColumnMap;
}

/**
 * What a header that is not GBIF multimedia most likely is, when it is one
 * of the usual mistakes: said in words a user can act on, instead of a list
 * of columns that reads as noise.
 */
function misread(header: readonly string[], positions: ReadonlyMap<string, number>): string | undefined {
  const first = header.join('\t');
  // A spreadsheet's "Unicode text" is UTF-16: after its byte-order mark (read as U+FFFD), every other byte of ASCII text is a NUL.
  if (/^\uFFFD{0,2}(?:(?:[\t -~]\u0000){4}|(?:\u0000[\t -~]){4})/.test(first)) return 'is UTF-16 text (a spreadsheet\'s "Unicode text"?), not UTF-8 as GBIF writes it: convert it first, for example with `iconv -f UTF-16 -t UTF-8`';
  if (header.length === 1 && /gbifid/i.test(first) && /[,;]/.test(first)) return `header is separated by ${first.includes(';') ? 'semicolons' : 'commas'}, not tabs as in a GBIF multimedia.txt (a spreadsheet's CSV?): save it as tab-separated text`;
  if (positions.has('mediatype') && !positions.has('identifier')) return 'is a GBIF simple download (one row per occurrence, a mediaType column, no image URLs): download the Darwin Core Archive instead, whose multimedia.txt lists every image';
  return undefined;
}
