/** README's first quick-start command: the demo runs the whole job end to end on bundled data. */
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { FIXTURES, tempDir } from './helpers/cli.js';

it('npm run demo ingests, downloads (IIIF included), reports, labels, exports and packs', async () => {
  const dir = tempDir();
  const child = spawn(process.execPath, [join(FIXTURES, 'demo.mjs'), dir], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr.on('data', (c: Buffer) => (output += c.toString()));
  const code = await new Promise<number | null>((done) => child.on('close', done));
  expect(code, output).toBe(0);
  expect(output).toMatch(/gbifIDs +done 3 +failed 1/);
  expect(output).toContain('IIIF manifests or services expanded: 1');
  const files = readdirSync(join(dir, 'images'), { recursive: true }).map(String).filter((f) => f.endsWith('.jpg')).sort();
  expect(files.map((f) => f.slice(-17))).toEqual(['1000000001-00.jpg', '1000000001-01.jpg', '1000000002-00.jpg', '1000000003-00.jpg', '1000000003-01.jpg']);
  // Labels from the occurrence file, in the export and in the training shards.
  expect(output).toMatch(/labelled +3 gbifIDs of the ledger/);
  expect(output).toContain(',scientificName,family,countryCode\r\n');
  expect(output).toMatch(/packed into .*shards: 1 shards \(1 written now\)\n +images +5 now/);
  // The set, and the empty file a pack holds its folder by (pack/set-lock.ts), which stays.
  expect(readdirSync(join(dir, 'shards')).sort()).toEqual(['.herbdl-pack.lock', 'herbdl-000000.keys', 'herbdl-000000.stats.json', 'herbdl-000000.tar', 'index.json']);
});
