/**
 * Finds the Simple Multimedia file in a Darwin Core Archive's meta.xml.
 * meta.xml is small and machine-written, so a tag scan is enough; a full XML
 * parser would be a dependency for six attributes.
 */

export const MULTIMEDIA_ROW_TYPE = 'http://rs.gbif.org/terms/1.0/Multimedia';

export interface MultimediaDescriptor {
  /** Path of the multimedia file inside the archive. */
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

/** The descriptor of the GBIF multimedia extension, or undefined when the archive declares none. */
export function findMultimedia(metaXml: string): MultimediaDescriptor | undefined {
  for (const m of metaXml.matchAll(/<(core|extension)\b([^>]*)>([\s\S]*?)<\/\1>/g)) {
    const attrs = attributes(m[2] as string);
    if (attrs.get('rowType') !== MULTIMEDIA_ROW_TYPE) continue;
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
