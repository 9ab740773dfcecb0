/**
 * The ingest worker reads the usual row in place and hands any row it is
 * unsure of to classifyRow. Both ways must give the same answer: every real
 * sample row and rows made to be awkward are read both ways and compared.
 */
import { describe, expect, it } from 'vitest';
import { mapColumns, type ColumnMap } from '../src/input/columns.js';
import { classifyRow, packAttribution, SKIP_REASONS } from '../src/input/rows.js';
import { urlHash } from '../src/input/url-hash.js';
import { ChunkClassifier } from '../src/ingest/chunk-classifier.js';
import { multimediaSamples, sampleText } from './helpers/samples.js';
import { TRICKY_URLS } from './helpers/tricky-urls.js';

const HEADER = 'gbifID\ttype\tformat\tidentifier\treferences\ttitle\tdescription\tsource\taudience\tcreated\tcreator\tcontributor\tpublisher\tlicense\trightsHolder';
const OLD_HEADER = 'gbifID\ttype\tformat\tidentifier\treferences\ttitle\tdescription\tcreated\tcreator\tcontributor\tpublisher\taudience\tsource\tlicense\trightsHolder';

interface Outcome {
  rows: number;
  skipped: number[];
  images: string[];
}

/** What the reference says of each line. */
function byReference(lines: string[], columns: ColumnMap): Outcome {
  const outcome: Outcome = { rows: 0, skipped: SKIP_REASONS.map(() => 0), images: [] };
  for (let line of lines) {
    if (line.endsWith('\r')) line = line.slice(0, -1);
    if (line === '') continue;
    outcome.rows++;
    const row = classifyRow(line.split('\t'), columns);
    if (typeof row === 'string') outcome.skipped[SKIP_REASONS.indexOf(row)]!++;
    else outcome.images.push(JSON.stringify([row.gbifId, row.url, urlHash(row.url), row.host, row.creator, packAttribution(row.attribution)]));
  }
  return outcome;
}

/**
 * What the chunk classifier says, chunk by chunk (handed over `perReply` at
 * a time, as the ingest sends several in one message), with its numbers read
 * back as the main thread would.
 */
function byClassifier(lines: string[], columns: ColumnMap, linesPerChunk: number, perReply = 1): Outcome {
  const classifier = new ChunkClassifier(columns);
  const outcome: Outcome = { rows: 0, skipped: SKIP_REASONS.map(() => 0), images: [] };
  let hosts: string[] = [];
  let attributions: string[] = [];
  for (let i = 0; i < lines.length; i += linesPerChunk * perReply) {
    const chunks: Buffer[] = [];
    for (let k = i; k < Math.min(i + linesPerChunk * perReply, lines.length); k += linesPerChunk) chunks.push(Buffer.from(lines.slice(k, k + linesPerChunk).join('\n'), 'utf8'));
    const reply = classifier.classify(...chunks);
    if (reply.restart) [hosts, attributions] = [[], []];
    hosts.push(...reply.newHosts);
    attributions.push(...reply.newAttributions);
    outcome.rows += reply.rows;
    reply.skipped.forEach((n, k) => (outcome.skipped[k]! += n));
    const bytes = Buffer.from(reply.textBytes);
    const texts = Array.from(reply.textEnds.subarray(0, 2 * reply.count), (end, k) => bytes.toString('utf8', k === 0 ? 0 : reply.textEnds[k - 1], end));
    for (let k = 0; k < reply.count; k++) {
      outcome.images.push(JSON.stringify([reply.gbifIds[k], texts[2 * k], reply.urlHashes[k], hosts[reply.hosts[k]!], texts[2 * k + 1], attributions[reply.attributions[k]!]]));
    }
  }
  return outcome;
}

function expectSame(lines: string[], columns: ColumnMap): Outcome {
  const reference = byReference(lines, columns);
  for (const perChunk of [1, 7, 500]) expect(byClassifier(lines, columns, perChunk)).toEqual(reference);
  expect(byClassifier(lines, columns, 7, 3)).toEqual(reference);
  return reference;
}

const columnsOf = (header: string) => mapColumns(header.split('\t')) as ColumnMap;
const row = (fields: Record<string, string>, header = HEADER) =>
  header
    .split('\t')
    .map((name) => fields[name] ?? '')
    .join('\t');

describe('ChunkClassifier', () => {
  it('reads awkward rows exactly as classifyRow does', () => {
    const base = { gbifID: '17', type: 'StillImage', format: 'image/jpeg', identifier: 'https://img.example.org/a.jpg', creator: 'A. Collector', publisher: 'Herbarium', license: 'CC0', rightsHolder: 'Museum' };
    const lines: string[] = [];
    for (const header of [HEADER, OLD_HEADER]) {
      const variants: Record<string, string>[] = [
        base,
        { ...base, gbifID: ' 17' },
        { ...base, gbifID: '17 ' },
        { ...base, gbifID: '017' },
        { ...base, gbifID: '0' },
        { ...base, gbifID: '-5' },
        { ...base, gbifID: '+5' },
        { ...base, gbifID: '1e3' },
        { ...base, gbifID: '12345678901234567' },
        { ...base, gbifID: '9007199254740993' },
        { ...base, gbifID: '' },
        { ...base, type: 'Sound' },
        { ...base, type: ' sound ' },
        { ...base, type: 'http://purl.org/dc/dcmitype/MovingImage' },
        { ...base, type: '' },
        { ...base, type: 'InteractiveResource', format: '' },
        { ...base, format: 'audio/mpeg' },
        { ...base, format: ' APPLICATION/PDF' },
        { ...base, format: 'video/mp4' },
        { ...base, identifier: '' },
        { ...base, identifier: '   ' },
        { ...base, creator: '' },
        { ...base, creator: 'Ünïcode Çollector', publisher: 'Muséum\u001f', license: '' },
        { ...base, rightsHolder: 'Museum\u001fCC0' },
        ...TRICKY_URLS.map((identifier) => ({ ...base, identifier: identifier.replace(/\t/g, '') })),
      ];
      lines.push(...variants.map((v) => row(v, header)));
    }
    lines.push('17\tStillImage', '17\t\t\thttps://img.example.org/a.jpg\t\t\t\t\t\t\t\t\t\t\t\t\textra', '', '\r', row(base) + '\r');
    const outcome = expectSame(lines, columnsOf(HEADER));
    expect(outcome.images.length).toBeGreaterThan(40);
    expect(outcome.skipped.every((n) => n > 0)).toBe(true);
  });

  it('reads files with only some of the columns', () => {
    const header = 'identifier\tgbifID\tlicense';
    const lines = ['https://a.example.org/1.jpg\t5\tCC0', 'https://a.example.org/2.jpg\t5\tCC-BY', 'https://b.example.org/1.jpg\t6\tCC0', 'https://b.example.org/1.jpg\t6'];
    expect(expectSame(lines, columnsOf(header)).images).toHaveLength(3);
    expect(expectSame(lines, columnsOf('gbifID\tidentifier')).skipped[0]).toBe(3); // wrong column count
  });

  it('starts its numbering again past 50,000 hosts and still gives every row its own', () => {
    const lines: string[] = [];
    for (let i = 0; i < 60_000; i++) lines.push(row({ gbifID: String(i + 1), identifier: `https://h${i}.example.org/x.jpg`, license: `L${i % 3}`, publisher: `P${i}` }));
    const columns = columnsOf(HEADER);
    const classifier = new ChunkClassifier(columns);
    let restarts = 0;
    for (let i = 0; i < lines.length; i += 5000) if (classifier.classify(Buffer.from(lines.slice(i, i + 5000).join('\n'))).restart) restarts++;
    expect(restarts).toBe(1);
    expect(byClassifier(lines, columns, 5000)).toEqual(byReference(lines, columns));
    // Chunks handed over together run past the limit before the numbering starts again, and still read right.
    expect(byClassifier(lines, columns, 5000, 4)).toEqual(byReference(lines, columns));
  });

  it('reads every row of the real GBIF samples exactly as classifyRow does', () => {
    let rows = 0;
    for (const file of multimediaSamples()) {
      const [header, ...lines] = sampleText(file).replace(/^\uFEFF/, '').split('\n');
      const columns = mapColumns((header as string).replace(/\r$/, '').split('\t'));
      if ('problem' in columns) continue;
      rows += expectSame(lines, columns).rows;
    }
    expect(rows).toBeGreaterThan(10_000);
  });
});
