/** Writes small multimedia files for download tests. */
import { writeFileSync } from 'node:fs';

const HEADER = 'gbifID\ttype\tformat\tidentifier\treferences\ttitle\tdescription\tsource\taudience\tcreated\tcreator\tcontributor\tpublisher\tlicense\trightsHolder';

/** rows: [gbifID, url] pairs, or [gbifID, url, creator], in file order. */
export function writeMultimedia(path: string, rows: readonly (readonly [number | string, string, string?])[]): string {
  const lines = rows.map(([id, url, creator]) => [String(id), 'StillImage', 'image/jpeg', url, '', '', '', '', '', '', creator ?? '', '', '', 'CC0', ''].join('\t'));
  writeFileSync(path, [HEADER, ...lines].join('\n') + '\n');
  return path;
}
