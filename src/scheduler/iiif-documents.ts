/**
 * IIIF documents already read in this run, by the identifier's URL, so a
 * manifest shared by many gbifIDs is fetched once per run (not once per
 * window, as shared image URLs are). Bounded by the images they describe;
 * the oldest go first.
 */
import { readFile } from 'node:fs/promises';
import { readIiif, type IiifDocument } from '../iiif/document.js';
import type { ImageOutcome } from '../ledger/ledger.js';

export interface ReadDocument {
  readonly document: IiifDocument;
  /** What fetching the document gave (recorded on the identifier's row). */
  readonly outcome: ImageOutcome;
}

const MAX_IMAGES = 100_000;

/** Reads a fetched JSON body (in memory, or from its temporary when it was large). Throws a PermanentError. */
export async function readDocument(received: ImageOutcome, body: Buffer | undefined, temp: string): Promise<ReadDocument> {
  const text = (body ?? (await readFile(temp))).toString('utf8');
  const document = readIiif(text, received.finalUrl);
  return { document, outcome: { ...received, receivedFormat: `iiif-${document.kind}` } };
}

export class IiifDocuments {
  private readonly byUrl = new Map<string, ReadDocument>();
  private images = 0;

  get(url: string): ReadDocument | undefined {
    return this.byUrl.get(url);
  }

  remember(url: string, read: ReadDocument): void {
    if (this.byUrl.has(url)) return;
    this.byUrl.set(url, read);
    this.images += read.document.images.length;
    for (const [oldest, old] of this.byUrl) {
      if (this.images <= MAX_IMAGES || oldest === url) break;
      this.byUrl.delete(oldest);
      this.images -= old.document.images.length;
    }
  }
}
