/**
 * Stored copies of a URL, for a claim: one image URL is shared by up to 72
 * gbifIDs in real exports, so a URL already stored (under another gbifID, or
 * as this very image before its gbifID was reopened or partly adopted) is
 * linked from its file, never fetched again. Found by the URL's hash
 * (images_by_url), the URL itself compared; a file verify found lost (its
 * sha256 forgotten) is no stored copy.
 */
import type Database from 'better-sqlite3';
import type { FetchedPart, StoredCopy } from '../ledger.js';
import { outcomeOf, type OutcomeRow } from '../rows.js';
import { STATE, urlHash } from './schema.js';

type CopyRow = OutcomeRow & { image_id: number; gbif_id: number; file_index: number; url: string };
type PartRow = OutcomeRow & { part_index: number; file_index: number; url: string };

export class StoredCopies {
  private readonly byUrl;
  private readonly parts;

  constructor(db: Database.Database) {
    this.byUrl = db.prepare(
      `SELECT image_id, gbif_id, COALESCE(file_index, image_index) AS file_index, url, http_status, final_url, content_type, bytes, sha256, width, height, received_format
       FROM images WHERE url_hash = ? AND state = ${STATE.done} AND sha256 IS NOT NULL ORDER BY gbif_id = ? DESC LIMIT 8`,
    );
    // A IIIF identifier's files are its parts, linked one by one.
    this.parts = db.prepare(
      `SELECT part_index, file_index, url, http_status, final_url, content_type, bytes, sha256, width, height, received_format
       FROM image_parts WHERE image_id = ? ORDER BY part_index`,
    );
  }

  /** A done copy of the URL: the image's own first, else one under another gbifID. */
  find(url: string, forGbifId: number): StoredCopy | undefined {
    // A IIIF document is read again when its gbifID is reopened (its canvases may have changed): never its own copy.
    const row = (this.byUrl.all(urlHash(url), forGbifId) as CopyRow[]).find(
      (r) => r.url === url && (r.gbif_id !== forGbifId || !r.received_format?.startsWith('iiif')),
    );
    if (!row) return undefined;
    const copy = { gbifId: row.gbif_id, fileIndex: row.file_index, image: outcomeOf(row) };
    if (!row.received_format?.startsWith('iiif')) return copy;
    const parts = (this.parts.all(row.image_id) as PartRow[]).map((p): FetchedPart => ({ partIndex: p.part_index, fileIndex: p.file_index, url: p.url, ...outcomeOf(p) }));
    // An expanded identifier with no parts recorded, or a part verify found lost (no sha256), cannot be linked: fetch it.
    return parts.length > 0 && parts.every((p) => p.sha256 !== null) ? { ...copy, parts } : undefined;
  }
}
