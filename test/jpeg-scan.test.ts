/**
 * The JPEG scan (src/validate/jpeg-scan.ts) reads every block of a baseline
 * JPEG without decoding it: it must pass every good one (sharp's encoder and
 * libjpeg-turbo's, fixtures/jpeg), fail every damaged one that a full
 * libvips decode fails, say what is wrong, and leave to libvips what it does
 * not read.
 */
import { join } from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { scanJpeg } from '../src/validate/jpeg-scan.js';
import { createValidator } from '../src/validate/validate-image.js';
import { tempDir } from './helpers/cli.js';
import { fixture, LIBJPEG_TURBO, noise } from './helpers/jpegs.js';


/** Where a JPEG's first scan's entropy-coded data starts. */
function scanStart(jpeg: Buffer): number {
  const sos = jpeg.indexOf(Buffer.from([0xff, 0xda]));
  return sos + 2 + jpeg.readUInt16BE(sos + 2);
}

describe('the JPEG scan', () => {
  const dir = tempDir();

  it('passes good JPEGs of every layout', async () => {
    const made = await Promise.all([
      noise(400, 600).jpeg().toBuffer(),
      noise(401, 599).jpeg({ quality: 95, chromaSubsampling: '4:4:4' }).toBuffer(),
      noise(333, 17, 1).jpeg({ quality: 40 }).toBuffer(),
      noise(1, 1).jpeg().toBuffer(),
      noise(250, 90).jpeg({ optimiseCoding: false }).toBuffer(),
      noise(250, 90).jpeg({ trellisQuantisation: true, overshootDeringing: true }).toBuffer(),
      noise(1600, 2400).jpeg({ quality: 85 }).toBuffer(),
    ]);
    const verdicts = [...made, ...LIBJPEG_TURBO.map(fixture)].map((jpeg) => scanJpeg(jpeg).verdict);
    expect(verdicts).toEqual(verdicts.map(() => 'whole'));
  });

  it('leaves progressive and arithmetic-coded JPEGs to libvips', async () => {
    const progressive = await noise(200, 100).jpeg({ progressive: true }).toBuffer();
    for (const jpeg of [progressive, fixture('progressive.jpg'), fixture('arithmetic.jpg')]) expect(scanJpeg(jpeg)).toMatchObject({ verdict: 'unread' });
    expect(scanJpeg(Buffer.from('<!DOCTYPE html>'))).toMatchObject({ verdict: 'unread' });
  });

  it('leaves to libvips a JPEG libjpeg refuses for what the scan does not read, and herbdl fails it', async () => {
    const sheet = await noise(200, 100).jpeg().toBuffer();
    // The first component's quantisation table made one that is never defined.
    const sof = sheet.indexOf(Buffer.from([0xff, 0xc0]));
    const noTable = Buffer.from(sheet);
    noTable.writeUInt8(3, sof + 2 + 2 + 6 + 2);
    // Two components with one ID, in the frame and in the scan.
    const sameIds = Buffer.from(sheet);
    sameIds.writeUInt8(sameIds.readUInt8(sof + 10), sof + 13);
    const sos = sameIds.indexOf(Buffer.from([0xff, 0xda]));
    sameIds.writeUInt8(sameIds.readUInt8(sos + 5), sos + 7);
    expect(scanJpeg(noTable)).toMatchObject({ verdict: 'unread' });
    expect(scanJpeg(sameIds)).toMatchObject({ verdict: 'unread' });
    const validate = createValidator({ jpegQuality: 90, maxEdge: 0, check: 'decode' }, 1);
    await expect(validate(join(dir, 'no-table.part'), noTable)).rejects.toMatchObject({ code: 'corrupt' });
  });

  it('says what is wrong with a damaged JPEG', async () => {
    const sheet = await noise(400, 600).jpeg().toBuffer();
    const start = scanStart(sheet);
    const restart = fixture('restart-rows.jpg');
    const rst0 = restart.indexOf(Buffer.from([0xff, 0xd0]));
    const perComponent = fixture('scan-per-component.jpg');
    const lastScan = perComponent.lastIndexOf(Buffer.from([0xff, 0xda]));
    // A stuffed 0xFF byte twice: sixteen 1 bits, a code no table has (all 1s is reserved).
    const badCode = Buffer.concat([sheet.subarray(0, start), Buffer.from([0xff, 0x00, 0xff, 0x00]), sheet.subarray(start)]);
    const wrongRestart = Buffer.from(restart);
    wrongRestart[rst0 + 1] = 0xd3;
    // Two more codes of one bit (two fewer of a longer length, so the table keeps its size): more codes than fit.
    const counts = sheet.indexOf(Buffer.from([0xff, 0xc4])) + 5;
    const notPrefix = Buffer.from(sheet);
    const longer = [...notPrefix.subarray(counts + 1, counts + 16)].findIndex((n) => n >= 2) + counts + 1;
    notPrefix.writeUInt8(notPrefix.readUInt8(counts) + 2, counts);
    notPrefix.writeUInt8(notPrefix.readUInt8(longer) - 2, longer);
    const cases: [string, Buffer, RegExp][] = [
      ['cut short', sheet.subarray(0, Math.floor(sheet.length * 0.6)), /^its data ends at MCU \d+ of 950 in scan 1$/],
      ['bytes lost, end kept', Buffer.concat([sheet.subarray(0, 20_000), sheet.subarray(20_700)]), /data ends (at|before) MCU \d+ of 950 in scan 1|in no table/],
      ['a code in no table', badCode, /a Huffman code in no table at MCU 1 of 950 in scan 1/],
      ['bytes after the last block', Buffer.concat([sheet.subarray(0, sheet.length - 2), Buffer.from([0x12, 0x34, 0x56]), sheet.subarray(sheet.length - 2)]), /^3 bytes of data after MCU 950 of 950 in scan 1$/],
      ['a restart out of turn', wrongRestart, /^marker 0xd3 where RST0 was due, after MCU 6 of 24 in scan 1$/],
      ['a table that is no prefix code', notPrefix, /^a Huffman table that is no prefix code$/],
      ['a scan missing', Buffer.concat([perComponent.subarray(0, lastScan), Buffer.from([0xff, 0xd9])]), /before every component was scanned/],
      ['no end marker', sheet.subarray(0, sheet.length - 2), /no end-of-image marker|ends inside scan/],
      ['cut in a header', sheet.subarray(0, 30), /ends inside a marker segment/],
    ];
    const wrong = cases
      .map(([name, jpeg, why]) => ({ name, scan: scanJpeg(jpeg), why }))
      .filter(({ scan, why }) => scan.verdict !== 'damaged' || !why.test(scan.why));
    expect(wrong).toEqual([]);
  });

  it('fails every damaged sheet that a full libvips decode fails, and no good one', async () => {
    // The larger sheet's data is read in several chunks (jpeg-scan.ts reads 64 KiB at a time).
    const sheets = await Promise.all([noise(400, 600).jpeg().toBuffer(), noise(400, 600).jpeg({ chromaSubsampling: '4:4:4' }).toBuffer(), fixture('restart-blocks-422.jpg'), noise(800, 1200).jpeg().toBuffer()]);
    let seed = 7;
    const random = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
    const missed: string[] = [];
    let libvipsFailed = 0;
    for (let n = 0; n < 120; n++) {
      const good = sheets[n % sheets.length]!;
      const start = scanStart(good);
      const at = start + Math.floor(random() * (good.length - 2 - start));
      const kind = Math.floor(n / sheets.length) % 3;
      let jpeg = Buffer.from(good);
      if (kind === 0) jpeg.writeUInt8(jpeg.readUInt8(at) ^ (1 << Math.floor(random() * 8)), at);
      else if (kind === 1) jpeg = Buffer.concat([good.subarray(0, at), good.subarray(Math.min(good.length - 2, at + 1 + Math.floor(random() * 500)))]);
      else jpeg.fill(0, at, Math.min(good.length - 2, at + 200));
      const decoded = await sharp(jpeg).raw().toBuffer().then(() => true, () => false);
      if (!decoded) libvipsFailed++;
      if (!decoded && scanJpeg(jpeg).verdict !== 'damaged') missed.push(`case ${n}, kind ${kind}: ${JSON.stringify(scanJpeg(jpeg))}`);
    }
    // The damage must be of a kind libvips sees often enough for the comparison to mean something.
    expect(libvipsFailed).toBeGreaterThanOrEqual(40);
    expect(missed).toEqual([]);
    expect(sheets.map((s) => scanJpeg(s).verdict)).toEqual(['whole', 'whole', 'whole', 'whole']);
    expect(sheets[3]!.length).toBeGreaterThan(3 * 64 * 1024);
  });

  it('makes the default check fail a sheet that libjpeg-turbo decodes without a word', async () => {
    const sheet = await noise(400, 600).jpeg().toBuffer();
    const start = scanStart(sheet);
    // One bit flipped, at the first of a fixed series of places where a full decode still passes it.
    let flipped: Buffer | undefined;
    for (let at = start + 1000; !flipped && at < sheet.length - 2; at += 997) {
      const jpeg = Buffer.from(sheet);
      jpeg.writeUInt8(jpeg.readUInt8(at) ^ 0x10, at);
      const decoded = await sharp(jpeg).raw().toBuffer().then(() => true, () => false);
      if (decoded && scanJpeg(jpeg).verdict === 'damaged') flipped = jpeg;
    }
    expect(flipped).toBeDefined();
    const validate = createValidator({ jpegQuality: 90, maxEdge: 0, check: 'decode' }, 1);
    await expect(validate(join(dir, 'flipped.part'), flipped!)).rejects.toMatchObject({ code: 'corrupt' });
    await expect(validate(join(dir, 'good.part'), sheet)).resolves.toMatchObject({ width: 400, height: 600 });
  });
});
