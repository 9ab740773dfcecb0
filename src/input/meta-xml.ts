/**
 * Finds a file of a Darwin Core Archive through its meta.xml: the Simple
 * Multimedia extension (ingest), or the occurrence core (labels).
 * meta.xml is small and machine-written, so a tag scan is enough; a full XML
 * parser would be a dependency for six attributes.
 */
import { InputError } from '../errors.js';

export const MULTIMEDIA_ROW_TYPE = 'http://rs.gbif.org/terms/1.0/Multimedia';

/** A file of a download: its row type in meta.xml, its usual name, and what to say when it is missing. */
export interface DownloadPart {
  readonly rowType: string;
  readonly fileName: string;
  /** What meta.xml calls it, for messages. */
  readonly declared: string;
  /** Why a download without it is refused. */
  readonly needed: string;
  readonly missingCode: string;
  /** With neither meta.xml nor `fileName`, a lone file whose name this matches stands for it. */
  readonly lone?: RegExp;
}

export const MULTIMEDIA: DownloadPart = {
  rowType: MULTIMEDIA_ROW_TYPE,
  fileName: 'multimedia.txt',
  declared: `GBIF multimedia extension (${MULTIMEDIA_ROW_TYPE})`,
  needed: 'no images to ingest',
  missingCode: 'no_multimedia',
};

export const OCCURRENCE: DownloadPart = {
  rowType: 'http://rs.tdwg.org/dwc/terms/Occurrence',
  fileName: 'occurrence.txt',
  declared: 'occurrence core (http://rs.tdwg.org/dwc/terms/Occurrence)',
  needed: 'no occurrences to take labels from',
  missingCode: 'no_occurrence',
  // A GBIF simple download: one tab-separated <download key>.csv of the occurrences, with no meta.xml.
  lone: /\.csv$/i,
};

export interface FileDescriptor {
  /** Path of the file inside the archive. */
  readonly location: string;
  readonly fieldsTerminatedBy: string;
  readonly fieldsEnclosedBy: string;
  readonly ignoreHeaderLines: number;
}

const ENTITIES: Record<string, string> = { '&quot;': '"', '&apos;': "'", '&lt;': '<', '&gt;': '>', '&amp;': '&', '&#9;': '\t', '&#10;': '\n' };

function decode(value: string): string {
  return value
    .replace(/&(quot|apos|lt|gt|amp|#9|#10);/g, (m) => ENTITIES[m] ?? m)
    .replace(/\\t/g, '\t')
    .replace(/\\n/g, '\n');
}

function attributes(tag: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of tag.matchAll(/([A-Za-z_:][\w.:-]*)\s*=\s*("([^"]*)"|'([^']*)')/g)) {
    out.set(m[1] as string, decode(m[3] ?? m[4] ?? ''));
  }
  return out;
}

/** The descriptor of `part` (the GBIF multimedia extension), or undefined when the archive declares none. */
export function findDownloadFile(metaXml: string, part: DownloadPart = MULTIMEDIA): FileDescriptor | undefined {
  for (const m of metaXml.matchAll(/<(core|extension)\b([^>]*)>([\s\S]*?)<\/\1>/g)) {
    const attrs = attributes(m[2] as string);
    if (attrs.get('rowType') !== part.rowType) continue;
    const location = /<location>\s*([^<]+?)\s*<\/location>/.exec(m[3] as string)?.[1];
    if (!location) continue;
    return {
      location: decode(location),
      fieldsTerminatedBy: attrs.get('fieldsTerminatedBy') ?? '\t',
      fieldsEnclosedBy: attrs.get('fieldsEnclosedBy') ?? '',
      ignoreHeaderLines: Number(attrs.get('ignoreHeaderLines') ?? '1'),
    };
  }
  return undefined;
}

/** A path's last part, lower-cased: archives are matched by file name, whatever folder or case they were packed with. */
function baseName(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1).toLowerCase();
}

/**
 * Which of a download's files is its multimedia file (or another `part`),
 * by the same rules for a zip's entries and for the folder a user unzipped
 * it into: the file meta.xml names for it (tab-separated without quotes, as
 * GBIF writes it; a publisher's IPT archive is not), or, with no meta.xml,
 * multimedia.txt. `names` are the download's paths and `readMeta` reads one
 * of them. Returns the chosen name; throws InputError naming `where`.
 */
export async function chooseDownloadFile(where: string, holder: 'archive' | 'folder', names: readonly string[], readMeta: (name: string) => Promise<string>, part: DownloadPart = MULTIMEDIA): Promise<string> {
  const meta = names.find((n) => baseName(n) === 'meta.xml');
  if (meta === undefined) {
    const text = names.find((n) => baseName(n) === part.fileName);
    const lone = part.lone ? names.filter((n) => part.lone?.test(n)) : [];
    if (text === undefined && lone.length === 1) return lone[0] as string;
    if (text === undefined) throw new InputError(where, `${holder} has neither meta.xml nor ${part.fileName}`, part.missingCode);
    return text;
  }
  const descriptor = findDownloadFile(await readMeta(meta), part);
  if (!descriptor) throw new InputError(where, `meta.xml declares no ${part.declared}: ${part.needed}`, part.missingCode);
  if (descriptor.fieldsTerminatedBy !== '\t' || descriptor.fieldsEnclosedBy !== '') {
    throw new InputError(where, `${descriptor.location} is not tab-separated without quotes as a GBIF download's is (a publisher's IPT archive?)`, 'not_gbif_download');
  }
  const named = names.find((n) => n === descriptor.location) ?? names.find((n) => baseName(n) === baseName(descriptor.location));
  if (named === undefined) throw new InputError(where, `meta.xml names ${descriptor.location}, which is not in the ${holder}`, part.missingCode);
  return named;
}
