import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { BIN, herbdl, herbdlAsync, herbdlJson, tempDir } from './helpers/cli.js';
import { GBIF_SAMPLES } from './helpers/samples.js';
import { imageServers } from './helpers/image-server.js';

describe('herbdl export', async () => {
  const [a] = await imageServers(1, 50);
  const dir = tempDir();
  const db = join(dir, 'export.db');
  const out = join(dir, 'images');
  const header = 'gbifID\ttype\tformat\tidentifier\tlicense\trightsHolder\tcreator\tpublisher';
  writeFileSync(
    join(dir, 'mm.txt'),
    [
      header,
      `1234567801\tStillImage\timage/jpeg\t${a!.route('/a.jpg', { kind: 'image' })}\thttp://creativecommons.org/licenses/by/4.0/\tRoyal Botanic Gardens, Kew\tJ. "Jack" Smith\tKew`,
      `1234567801\tStillImage\timage/jpeg\t${a!.route('/b.jpg', { kind: 'image' })}\tCC0\tKew\t\tKew`,
      `1234567802\tStillImage\timage/jpeg\t${a!.route('/gone.jpg', { kind: 'status', status: 410 })}\tAll rights reserved\tMNHN\tØ. Næss\tMNHN`,
    ].join('\n') + '\n',
  );
  herbdlJson(['ingest', join(dir, 'mm.txt'), '--db', db]);
  await herbdlAsync(['run', '--db', db, '--out', out, '--allow-private-network']);

  it('writes CSV with a header, escaping commas and quotes, paths relative to --out', () => {
    const r = herbdl(['export', '--db', db]);
    expect(r.status).toBe(0);
    const lines = r.stdout.split('\r\n');
    expect(lines[0]).toBe('gbifID,NN,imageIndex,iiifCanvas,path,url,finalUrl,license,rightsHolder,creator,publisher,width,height,bytes,sha256,state,error');
    expect(lines).toHaveLength(4); // header, two done images, final empty
    const [id, nn, index, canvas, path, url, finalUrl, license] = (lines[1] as string).split(',');
    expect([id, nn, index, canvas, path, url, finalUrl, license]).toEqual(['1234567801', '0', '0', '', '123/456/1234567801-00.jpg', `${a!.origin}/a.jpg`, `${a!.origin}/a.jpg`, 'http://creativecommons.org/licenses/by/4.0/']);
    expect(lines[1]).toContain(',"Royal Botanic Gardens, Kew","J. ""Jack"" Smith",Kew,');
    expect(existsSync(join(out, '123/456/1234567801-00.jpg'))).toBe(true);
    const sha = (lines[1] as string).split(',').at(-3);
    expect(sha).toMatch(/^[0-9a-f]{64}$/);
  });

  it('writes JSON lines, and --state failed gives the error code', () => {
    const r = herbdl(['export', '--db', db, '--format', 'jsonl', '--state', 'failed']);
    const rows = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(rows).toEqual([
      expect.objectContaining({ gbifID: 1234567802, NN: 0, imageIndex: 0, iiifCanvas: null, path: null, state: 'failed', error: 'http_410', creator: 'Ø. Næss', license: 'All rights reserved' }),
    ]);
  });

  it('--state all lists every image once', () => {
    const r = herbdl(['export', '--db', db, '--format', 'jsonl', '--state', 'all']);
    expect(r.stdout.trim().split('\n')).toHaveLength(3);
  });

  it('--out-file appears whole or not at all', () => {
    const file = join(dir, 'attribution.csv');
    const r = herbdl(['export', '--db', db, '--out-file', file]);
    expect(r.status).toBe(0);
    expect(r.stdout).toBe('');
    expect(readFileSync(file, 'utf8').split('\r\n')).toHaveLength(4);
    expect(readdirSync(dir).filter((f) => f.endsWith('.part'))).toEqual([]);
  });

  it('ends quietly, exit 0, when its reader goes away (export | head)', () => {
    // A ledger large enough that the pipe fills: the sample download's 1,302 images.
    const big = join(dir, 'piped.db');
    herbdlJson(['ingest', '--db', big, join(GBIF_SAMPLES, 'rgbif-0258360-220831081235567', 'multimedia.txt.gz')]);
    for (const format of ['csv', 'jsonl']) {
      const r = spawnSync('bash', ['-c', `set -o pipefail; "${process.execPath}" "${BIN}" export --db "${big}" --state all --format ${format} | head -1`], { encoding: 'utf8' });
      expect(r.stdout.split('\n')).toHaveLength(2);
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
    }
  });

  it('refuses an unknown format', () => {
    const r = herbdl(['export', '--db', db, '--format', 'xml']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/--format: expected one of csv, jsonl/);
  });
});
