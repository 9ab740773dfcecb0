import { existsSync, mkdirSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { FIXTURES, herbdl, herbdlJson, tempDir } from './helpers/cli.js';
import { writeZip } from './helpers/zip.js';
import type { IngestJson, StatusJson } from './helpers/ledger.js';

const FIXTURE = join(FIXTURES, 'multimedia.txt');
const META_XML = `<?xml version="1.0" encoding="UTF-8"?>
<archive xmlns="http://rs.tdwg.org/dwc/text/" metadata="metadata.xml">
  <core encoding="UTF-8" fieldsTerminatedBy="\\t" linesTerminatedBy="\\n" fieldsEnclosedBy="" ignoreHeaderLines="1" rowType="http://rs.tdwg.org/dwc/terms/Occurrence">
    <files><location>occurrence.txt</location></files>
    <id index="0" />
  </core>
  <extension encoding="UTF-8" fieldsTerminatedBy="\\t" linesTerminatedBy="\\n" fieldsEnclosedBy="" ignoreHeaderLines="1" rowType="http://rs.gbif.org/terms/1.0/Multimedia">
    <files><location>multimedia.txt</location></files>
    <coreid index="0" />
  </extension>
</archive>
`;

/**
 * Rewrites fields of the entry `name` in a zip's bytes: `central` at their
 * offsets in its central directory record, `local` in its local header.
 */
function patchEntry(zip: Buffer, name: string, central: Record<number, number>, local: Record<number, number> = {}): Buffer {
  const out = Buffer.from(zip);
  const named = (at: number, lengthAt: number, nameAt: number) => out.toString('latin1', at + nameAt, at + nameAt + out.readUInt16LE(at + lengthAt)) === name;
  let patched = 0;
  for (let at = out.indexOf('PK\x01\x02', 0, 'latin1'); at >= 0; at = out.indexOf('PK\x01\x02', at + 4, 'latin1')) {
    if (!named(at, 28, 46)) continue;
    // Flags (8) and method (10) are 16-bit fields; the sizes 32-bit.
    for (const [offset, value] of Object.entries(central)) (Number(offset) <= 10 ? out.writeUInt16LE(value, at + Number(offset)) : out.writeUInt32LE(value, at + Number(offset)));
    patched++;
  }
  for (let at = out.indexOf('PK\x03\x04', 0, 'latin1'); at >= 0; at = out.indexOf('PK\x03\x04', at + 4, 'latin1')) {
    if (!named(at, 26, 30)) continue;
    for (const [offset, value] of Object.entries(local)) out.writeUInt16LE(value, at + Number(offset));
  }
  expect(patched).toBe(1);
  return out;
}

function expectFixtureCounts(summary: IngestJson): void {
  expect(summary).toMatchObject({ rowsRead: 30, gbifIds: 9, images: 12, duplicates: 1 });
}

describe('compressed and archived input', () => {
  const dir = tempDir();
  const text = readFileSync(FIXTURE);

  it('reads multimedia.txt.gz', () => {
    const file = join(dir, 'multimedia.txt.gz');
    writeFileSync(file, gzipSync(text));
    expectFixtureCounts(herbdlJson<IngestJson>(['ingest', file, '--db', join(dir, 'gz.db')]));
  });

  it('tells gzip by content, not by name', () => {
    const file = join(dir, 'multimedia-gz.txt');
    writeFileSync(file, gzipSync(text));
    expectFixtureCounts(herbdlJson<IngestJson>(['ingest', file, '--db', join(dir, 'gz2.db')]));
  });

  it('reads a GBIF download zip in place, finding multimedia through meta.xml', async () => {
    const file = await writeZip(join(dir, 'download.zip'), {
      'meta.xml': META_XML,
      'occurrence.txt': 'gbifID\tbasisOfRecord\n1000001\tPreservedSpecimen\n',
      'multimedia.txt': text,
    });
    expectFixtureCounts(herbdlJson<IngestJson>(['ingest', file, '--db', join(dir, 'zip.db')]));
  });

  it('reads a zip whose multimedia is stored, not compressed', async () => {
    const file = await writeZip(join(dir, 'stored.zip'), { 'meta.xml': META_XML, 'multimedia.txt': text }, { stored: ['multimedia.txt'] });
    expectFixtureCounts(herbdlJson<IngestJson>(['ingest', file, '--db', join(dir, 'stored.db')]));
  });

  it('reads a ZIP64 archive', async () => {
    const file = await writeZip(join(dir, 'download64.zip'), { 'meta.xml': META_XML, 'multimedia.txt': text }, { zip64: true });
    // The end-of-central-directory record of a ZIP64 archive has its own signature.
    expect(readFileSync(file).includes(Buffer.from([0x50, 0x4b, 0x06, 0x06]))).toBe(true);
    expectFixtureCounts(herbdlJson<IngestJson>(['ingest', file, '--db', join(dir, 'zip64.db')]));
  });

  it('reads the folder a download was unzipped into: meta.xml names its multimedia file', () => {
    const folder = join(dir, 'unzipped');
    mkdirSync(folder);
    // Named otherwise than multimedia.txt, so only meta.xml can lead to it.
    writeFileSync(join(folder, 'meta.xml'), META_XML.replace('<location>multimedia.txt</location>', '<location>media.txt</location>'));
    writeFileSync(join(folder, 'occurrence.txt'), 'gbifID\tbasisOfRecord\n1000001\tPreservedSpecimen\n');
    writeFileSync(join(folder, 'media.txt'), text);
    expectFixtureCounts(herbdlJson<IngestJson>(['ingest', folder, '--db', join(dir, 'folder.db')]));
  });

  it('reads a folder without meta.xml by its multimedia.txt, gzipped or not', () => {
    for (const [name, content] of [['multimedia.txt', text], ['multimedia.txt.gz', gzipSync(text)]] as const) {
      const folder = join(dir, `bare-${name}`);
      mkdirSync(folder);
      writeFileSync(join(folder, name), content);
      expectFixtureCounts(herbdlJson<IngestJson>(['ingest', folder, '--db', join(dir, `bare-${name}.db`)]));
    }
  });

  it('reads a zip without meta.xml by its multimedia.txt', async () => {
    const file = await writeZip(join(dir, 'bare.zip'), { 'export/multimedia.txt': text });
    expectFixtureCounts(herbdlJson<IngestJson>(['ingest', file, '--db', join(dir, 'bare.db')]));
  });
});

describe('bad input: one line naming the file, non-zero exit, nothing written', () => {
  const dir = tempDir();
  const text = readFileSync(FIXTURE);

  function expectRefused(file: string, pattern: RegExp, expectedExit = 3): void {
    const db = join(dir, `refused-${Math.random().toString(36).slice(2)}.db`);
    const r = herbdl(['ingest', file, '--db', db]);
    expect(r.status).toBe(expectedExit);
    expect(r.stdout).toBe('');
    const lines = r.stderr.trimEnd().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(file);
    expect(lines[0]).toMatch(pattern);
    expect(existsSync(db)).toBe(false);
  }

  it('a missing file', () => expectRefused(join(dir, 'nope.txt'), /no such file/));

  it('a folder that holds no download', () => {
    const sub = join(dir, 'a-folder');
    mkdirSync(sub);
    writeFileSync(join(sub, 'notes.txt'), 'not a download\n');
    expectRefused(sub, /: folder has neither meta\.xml nor multimedia\.txt/);
  });

  it("a folder whose meta.xml names a file it lacks", () => {
    const sub = join(dir, 'lacking');
    mkdirSync(sub);
    writeFileSync(join(sub, 'meta.xml'), META_XML);
    expectRefused(sub, /meta\.xml names multimedia\.txt, which is not in the folder/);
  });

  it('an empty file', () => {
    const file = join(dir, 'empty.txt');
    writeFileSync(file, '');
    expectRefused(file, /empty/);
  });

  it('binary garbage', () => {
    const file = join(dir, 'garbage.bin');
    const bytes = Buffer.alloc(64 * 1024);
    let x = 12345;
    for (let i = 0; i < bytes.length; i++) {
      x = (x * 1103515245 + 12345) & 0x7fffffff;
      bytes[i] = x & 0xff;
    }
    writeFileSync(file, bytes);
    expectRefused(file, /no gbifID or identifier column|no gbifID column|not a text file/);
  });

  it('a line longer than 16 MiB, after good rows in several chunks', () => {
    const file = join(dir, 'long-line.txt');
    const good = (text.toString('utf8').split('\n').slice(1, 11).join('\n') + '\n').repeat(400);
    writeFileSync(file, text.toString('utf8').split('\n')[0] + '\n' + good + '1\t' + 'x'.repeat(17 * 1024 * 1024) + '\n');
    const db = join(dir, 'long-line.db');
    const r = herbdl(['ingest', file, '--db', db]);
    expect(r.status).toBe(3);
    expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(new RegExp(`${file}: line ${4002} is longer than 16 MiB: not a text file`));
  });

  it('a header without gbifID', () => {
    const file = join(dir, 'occurrence.txt');
    writeFileSync(file, 'id\ttype\tidentifier\n1\tStillImage\thttps://a.example.org/x.jpg\n');
    expectRefused(file, /header has no gbifID column/);
  });

  it('a header without identifier', () => {
    const file = join(dir, 'noident.txt');
    writeFileSync(file, 'gbifID\ttype\n1\tStillImage\n');
    expectRefused(file, /header has no identifier column/);
  });

  it('a multimedia.txt saved by a spreadsheet as UTF-16 "Unicode text", or as CSV: said so, with what to do', () => {
    const utf16 = join(dir, 'unicode.txt');
    writeFileSync(utf16, Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(text.toString('utf8'), 'utf16le')]));
    expectRefused(utf16, /unicode\.txt: is UTF-16 text \(a spreadsheet's "Unicode text"\?\), not UTF-8 as GBIF writes it: convert it first/);
    const csv = join(dir, 'commas.csv');
    writeFileSync(csv, text.toString('utf8').replaceAll('\t', ','));
    expectRefused(csv, /commas\.csv: header is separated by commas, not tabs/);
  });

  it('a GBIF simple download, which lists no image URLs: said so, with what to download instead', () => {
    const file = join(dir, '0012345-240101120000000.csv');
    writeFileSync(file, 'gbifID\tdatasetKey\toccurrenceID\tkingdom\tmediaType\n1\tabc\tocc-1\tPlantae\tStillImage\n');
    expectRefused(file, /is a GBIF simple download \(one row per occurrence, a mediaType column, no image URLs\): download the Darwin Core Archive instead/);
  });

  it('a truncated .gz', () => {
    const file = join(dir, 'truncated.txt.gz');
    const gz = gzipSync(text);
    writeFileSync(file, gz.subarray(0, Math.floor(gz.length * 0.7)));
    expectRefused(file, /truncated gzip/);
  });

  it('a truncated .zip', async () => {
    const file = await writeZip(join(dir, 'truncated.zip'), { 'meta.xml': META_XML, 'multimedia.txt': text });
    truncateSync(file, Math.floor(statSync(file).size * 0.6));
    expectRefused(file, /zip/);
  });

  it('a zip whose multimedia entry is not the size its directory declares', async () => {
    const good = readFileSync(await writeZip(join(dir, 'sized.zip'), { 'meta.xml': META_XML, 'multimedia.txt': text }));
    // The central directory's uncompressed size is at offset 24 of an entry's record.
    const smaller = join(dir, 'declared-smaller.zip');
    writeFileSync(smaller, patchEntry(good, 'multimedia.txt', { 24: text.length - 100 }));
    expectRefused(smaller, /damaged zip entry \(too many bytes in the entry/);
    const larger = join(dir, 'declared-larger.zip');
    writeFileSync(larger, patchEntry(good, 'multimedia.txt', { 24: text.length + 100 }));
    expectRefused(larger, new RegExp(`damaged zip entry \\(the entry ended at ${text.length} of the ${text.length + 100} bytes`));
  });

  it('a zip whose multimedia is compressed with a method other than deflate', async () => {
    const good = readFileSync(await writeZip(join(dir, 'method.zip'), { 'meta.xml': META_XML, 'multimedia.txt': text }));
    // 12 is bzip2: the method is at offset 10 of the central record and 8 of the local header.
    const file = join(dir, 'bzip2.zip');
    writeFileSync(file, patchEntry(good, 'multimedia.txt', { 10: 12 }, { 8: 12 }));
    expectRefused(file, /multimedia.txt is compressed with method 12, which herbdl cannot read/);
  });

  it('a zip whose multimedia entry is encrypted', async () => {
    const good = readFileSync(await writeZip(join(dir, 'plain.zip'), { 'meta.xml': META_XML, 'multimedia.txt': text }));
    // Bit 0 of the flags (offset 8 of the central record, 6 of the local header) marks an encrypted entry.
    const file = join(dir, 'encrypted.zip');
    writeFileSync(file, patchEntry(good, 'multimedia.txt', { 8: 1 }, { 6: 1 }));
    expectRefused(file, /multimedia.txt is encrypted: not a GBIF download/);
  });

  it('a zip without a multimedia file', async () => {
    const file = await writeZip(join(dir, 'nomedia.zip'), { 'occurrence.txt': 'gbifID\n1\n' });
    expectRefused(file, /neither meta.xml nor multimedia.txt/);
  });

  it('a zip whose meta.xml declares no multimedia', async () => {
    const meta = META_XML.replace(/<extension[\s\S]*<\/extension>/, '');
    const file = await writeZip(join(dir, 'nomedia2.zip'), { 'meta.xml': meta, 'occurrence.txt': 'gbifID\n1\n' });
    expectRefused(file, /declares no GBIF multimedia/);
  });

  it('leaves an existing ledger exactly as it was', () => {
    const db = join(dir, 'existing.db');
    herbdlJson(['ingest', FIXTURE, '--db', db]);
    const before = herbdlJson<StatusJson>(['status', '--db', db]);
    const bad = join(dir, 'bad-again.txt.gz');
    const gz = gzipSync(Buffer.concat([text, Buffer.from(text.toString().replace(/10000/g, '90000'))]));
    writeFileSync(bad, gz.subarray(0, gz.length - 20));
    const r = herbdl(['ingest', bad, '--db', db]);
    expect(r.status).toBe(3);
    expect(r.stderr).toMatch(/truncated gzip stream \(nothing of it was written\)/);
    expect(herbdlJson<StatusJson>(['status', '--db', db])).toEqual(before);
  });

  it('a usage error exits 2', () => {
    const r = herbdl(['ingest']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/missing required argument/);
  });
});
