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
    const shown = header.slice(0, 8).map((h) => JSON.stringify(h.slice(0, 40))).join(', ');
    return {
      problem: `header has no ${missing.map((m) => (m === 'gbifId' ? 'gbifID' : m)).join(' or ')} column (first columns: ${shown}); expected a GBIF multimedia.txt`,
    };
  }
  const map: Record<string, number> = { count: header.length };
  for (const name of WANTED) map[name] = positions.get(name.toLowerCase()) ?? -1;
  return map as unknown as ColumnMap;
}
