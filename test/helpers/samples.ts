/**
 * The real GBIF downloads and IIIF documents in fixtures/samples: public data,
 * copied from the project's shared samples (fixtures/samples/SOURCES.md says
 * where each came from). A GBIF sample's multimedia.txt is kept gzipped, as
 * multimedia.txt.gz: herbdl reads it as it is, and tests that read its rows
 * directly go through sampleText.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { FIXTURES } from './cli.js';

export const SAMPLES = join(FIXTURES, 'samples');
export const GBIF_SAMPLES = join(SAMPLES, 'gbif');

/** The multimedia file of every GBIF sample folder that has one (a .gz for the downloads, plain in an IPT archive). */
export function multimediaSamples(): string[] {
  return readdirSync(GBIF_SAMPLES)
    .sort()
    .flatMap((dir) => ['multimedia.txt.gz', 'Multimedia.txt'].map((name) => join(GBIF_SAMPLES, dir, name)).filter((path) => existsSync(path)));
}

/** A sample file's text, unzipped when it is gzipped. */
export function sampleText(path: string): string {
  const bytes = readFileSync(path);
  return (path.endsWith('.gz') ? gunzipSync(bytes) : bytes).toString('utf8');
}
