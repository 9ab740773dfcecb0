/**
 * The real GBIF downloads and IIIF documents in ../shared/samples. They are
 * read in place, never copied into the repo. Where the folder is absent (a
 * clone elsewhere) those tests skip and say why; under CI=true its absence is
 * a failure, so CI can never pass by skipping them.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { REPO } from './cli.js';

export const SAMPLES = join(REPO, '..', 'shared', 'samples');
export const samplesPresent = existsSync(join(SAMPLES, 'SOURCES.md'));
export const inCI = process.env.CI === 'true' || process.env.CI === '1';

if (!samplesPresent) {
  const message = `../shared/samples not found at ${SAMPLES}: the tests on real GBIF downloads are skipped`;
  if (inCI) throw new Error(`${message}, and CI=true requires them`);
  console.warn(message);
}
