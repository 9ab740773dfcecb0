/** Every real GBIF download in fixtures/samples ingests with the counts an independent reading gives. */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { herbdl, herbdlJson, tempDir } from './helpers/cli.js';
import { readLedger, type IngestJson } from './helpers/ledger.js';
import { GBIF_SAMPLES as GBIF, sampleText } from './helpers/samples.js';
import { writeZip } from './helpers/zip.js';

// rows, new gbifIDs, images, skips by reason (zero reasons left out). The
// amblyomma sample's hand-edited "2803144270 " joins its own ID: 1,074 not 1,075.
const EXPECTED: Record<string, [number, number, number, Record<string, number>]> = {
  amblyomma_inat_full_archive: [1362, 1074, 1362, {}],
  frogs_mcz_cas: [7626, 4529, 7180, { not_still_image: 379, empty_identifier: 67 }],
  ghana_ecoservices: [1184, 456, 476, { empty_identifier: 708 }],
  norway_artsobs_robitt: [1140, 818, 1107, { not_still_image: 33 }],
  'odd-rows': [38, 30, 30, { not_still_image: 5, empty_identifier: 3 }],
  psilocybe_liberty_cap: [1619, 804, 1619, {}],
  'rgbif-0000066-140928181241064': [215, 209, 210, { empty_identifier: 5 }],
  'rgbif-0026367-210914110416597': [619, 564, 619, {}],
  'rgbif-0027702-210914110416597': [0, 0, 0, {}],
  'rgbif-0084005-210914110416597': [79, 68, 79, {}],
  'rgbif-0258360-220831081235567': [3317, 546, 1302, { empty_identifier: 1994, not_still_image: 21 }],
  vitellaria_herbaria: [533, 449, 483, { empty_identifier: 50 }],
};

function nonZero(skipped: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(skipped).filter(([, n]) => n > 0));
}

/** Zips a sample folder as its download had it: a gzipped multimedia.txt goes in as the plain file. */
async function zipFolder(folder: string, path: string): Promise<string> {
  const entries: Record<string, string | Buffer> = {};
  for (const name of readdirSync(folder)) {
    if (name.endsWith('.gz')) entries[name.slice(0, -3)] = sampleText(join(folder, name));
    else entries[name] = readFileSync(join(folder, name));
  }
  return writeZip(path, entries);
}

describe('real GBIF downloads from fixtures/samples', () => {
  const dir = tempDir();

  it('the samples folder holds every download this test expects', () => {
    const withMultimedia = readdirSync(GBIF).filter((d) => readdirSync(join(GBIF, d)).includes('multimedia.txt.gz'));
    expect(withMultimedia.sort()).toEqual(Object.keys(EXPECTED).sort());
  });

  it.each(Object.entries(EXPECTED))('%s', (name, [rows, ids, images, skipped]) => {
    const db = join(dir, `${name}.db`);
    const summary = herbdlJson<IngestJson>(['ingest', join(GBIF, name, 'multimedia.txt.gz'), '--db', db]);
    expect(summary).toMatchObject({ rowsRead: rows, gbifIds: ids, images, duplicates: 0 });
    expect(nonZero(summary.skipped)).toEqual(skipped);
  });

  it('keeps the URL shared by 72 gbifIDs as one URL', () => {
    const db = join(dir, 'rgbif-0000066-140928181241064.db');
    const most = readLedger(db, (d) => d.prepare('SELECT count(*) FROM images GROUP BY url ORDER BY 1 DESC LIMIT 1').pluck().get());
    expect(most).toBe(72);
  });

  it('reads a whole download zipped, through its real meta.xml', async () => {
    const file = await zipFolder(join(GBIF, 'rgbif-0026367-210914110416597'), join(dir, 'rgbif-0026367.zip'));
    const summary = herbdlJson<IngestJson>(['ingest', file, '--db', join(dir, 'zipped.db')]);
    expect(summary).toMatchObject({ rowsRead: 619, gbifIds: 564, images: 619 });
  });

  it('refuses a publisher IPT archive (CSV, quoted, no gbifID) with a clear line', async () => {
    const file = await zipFolder(join(GBIF, 'ipt-kew-herbarium-dwca'), join(dir, 'kew-ipt.zip'));
    const r = herbdl(['ingest', file, '--db', join(dir, 'kew.db')]);
    expect(r.status).toBe(3);
    expect(r.stderr).toMatch(/image\.txt is not tab-separated/);
  });

  it('refuses an Audubon Core archive: it declares no GBIF multimedia', async () => {
    const file = await zipFolder(join(GBIF, 'ipt-naturalis-audubon-dwca'), join(dir, 'naturalis.zip'));
    const r = herbdl(['ingest', file, '--db', join(dir, 'naturalis.db')]);
    expect(r.status).toBe(3);
    expect(r.stderr).toMatch(/declares no GBIF multimedia/);
  });

  // Users unzip downloads: the folder is read as the zip is. (The samples keep multimedia.txt gzipped, which stands for it.)
  it('reads the folder a download was unzipped into, through its real meta.xml', () => {
    const summary = herbdlJson<IngestJson>(['ingest', join(GBIF, 'rgbif-0026367-210914110416597'), '--db', join(dir, 'folder.db')]);
    expect(summary).toMatchObject({ rowsRead: 619, gbifIds: 564, images: 619, duplicates: 0 });
  });

  it.each([
    ['ipt-kew-herbarium-dwca', /: image\.txt is not tab-separated without quotes/],
    ['ipt-naturalis-audubon-dwca', /: meta\.xml declares no GBIF multimedia/],
  ])('refuses the unzipped folder of %s in one line, writing nothing', (name, pattern) => {
    const folder = join(GBIF, name);
    const db = join(dir, `folder-${name}.db`);
    const r = herbdl(['ingest', folder, '--db', db]);
    expect(r.status).toBe(3);
    expect(r.stderr.trimEnd().split('\n')).toEqual([expect.stringMatching(pattern)]);
    expect(r.stderr).toContain(folder);
    expect(existsSync(db)).toBe(false);
  });
});
