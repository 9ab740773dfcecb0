// Writes a synthetic GBIF multimedia.txt shaped like the herbarium export:
// grouped by gbifID (unsorted), ~1.2 images per ID, a few thousand hosts,
// some URLs shared across IDs, licences and attribution in most rows.
// shape 'one-host' is the other real shape: one institution's export, 1 to 6
// images per gbifID (about 2.1), every URL on one host with a query string.
// Deterministic (seeded), streamed to disk so any size fits in memory.
import { createReadStream, createWriteStream, existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { once } from 'node:events';

export const HEADER =
  'gbifID\ttype\tformat\tidentifier\treferences\ttitle\tdescription\tsource\taudience\tcreated\tcreator\tcontributor\tpublisher\tlicense\trightsHolder';

/** A seeded generator of numbers in [0, 1) (mulberry32): the same file for the same seed. */
export function rng(seed) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const LICENSES = [
  'http://creativecommons.org/licenses/by/4.0/',
  'http://creativecommons.org/publicdomain/zero/1.0/',
  'http://creativecommons.org/licenses/by-nc/4.0/',
  'All rights reserved',
];

/** Writes `rows` data rows to `path`; returns { rows, gbifIds }. */
export async function generateMultimedia(path, { rows, hosts = 2000, seed = 42, hostPrefix = 'herbarium', shape = 'herbarium' }) {
  const oneHost = shape === 'one-host';
  const rand = rng(seed);
  const out = createWriteStream(path, { highWaterMark: 1 << 20 });
  let buf = HEADER + '\n';
  let written = 0;
  let gbifIds = 0;
  while (written < rows) {
    // GBIF groups rows by gbifID but does not sort them: an odd multiplier
    // mod 2^32 is a bijection, so IDs are unique and in no useful order.
    const gbifId = 1_000_000_000 + Number((BigInt(gbifIds) * 2654435761n) % 4294967296n);
    gbifIds++;
    const r = rand();
    const images = oneHost ? 1 + Math.floor(r * rand() * 6) : r < 0.87 ? 1 : r < 0.97 ? 2 : 2 + Math.floor(rand() * 8);
    const host = oneHost ? 'images.herbarium.example.org' : `${hostPrefix}${Math.floor(rand() * rand() * hosts)}.example.org`;
    for (let i = 0; i < images && written < rows; i++) {
      const shared = rand() < 0.01;
      const url = oneHost
        ? `https://${host}/fetch.php?id=${gbifId}&n=${i}&size=large&format=jpg`
        : shared
          ? `https://${host}/shared/${Math.floor(rand() * 500)}.jpg`
          : `https://${host}/media/${gbifId}/${i}/large.jpg?size=full`;
      const lic = LICENSES[Math.floor(rand() * LICENSES.length)];
      buf += `${gbifId}\tStillImage\timage/jpeg\t${url}\thttps://${host}/specimen/${gbifId}\t\t\t\t\t2019-03-04T10:00:00Z\tCollector ${gbifId % 977}\t\tHerbarium ${host}\t${lic}\tHerbarium ${host}\n`;
      written++;
      if (buf.length > 1 << 20) {
        if (!out.write(buf)) await once(out, 'drain');
        buf = '';
      }
    }
  }
  out.write(buf);
  out.end();
  await once(out, 'finish');
  return { rows: written, gbifIds };
}

/** The herbarium-shaped file of `rows` rows in `dir`, generated once and kept for later runs (bench:ingest:pg, bench:export). */
export async function herbariumFile(dir, rows) {
  const file = join(dir, `multimedia-herbarium-${rows}.txt`);
  if (!existsSync(file)) {
    process.stderr.write(`generating ${file} ...\n`);
    await generateMultimedia(file, { rows, shape: 'herbarium' });
  }
  return file;
}

/**
 * Writes `path`: a newer export of the same query as the file `older`, as
 * GBIF's weekly re-crawls change one: the same rows in the same order, but
 * 1% of gbifIDs gone (occurrences deleted), 0.5% of images at a moved URL (a
 * publisher's new image server), 0.5% of gbifIDs with an image more, and 1%
 * new gbifIDs at the end. Returns what changed, counted as a snapshot counts.
 */
export async function newerExport(older, path, { seed = 7 } = {}) {
  const rand = rng(seed);
  const out = createWriteStream(path, { highWaterMark: 1 << 20 });
  const changed = { rows: 0, goneIds: 0, movedImages: 0, addedImages: 0, newIds: 0 };
  let buf = '';
  const write = async (line) => {
    buf += line + '\n';
    changed.rows++;
    if (buf.length > 1 << 20) {
      if (!out.write(buf)) await once(out, 'drain');
      buf = '';
    }
  };
  let group = [];
  let ids = 0;
  const flush = async () => {
    if (group.length === 0) return;
    ids++;
    if (rand() < 0.01) changed.goneIds++;
    else {
      for (const line of group) {
        if (rand() < 0.005) {
          changed.movedImages++;
          await write(line.replace('.example.org/', '.example.org/v2/'));
        } else await write(line);
      }
      if (rand() < 0.005) {
        changed.addedImages++;
        const [id, type, format, url, ...rest] = group[0].split('\t');
        await write([id, type, format, url.replace(/[^/]*$/, 'added.jpg'), ...rest].join('\t'));
      }
    }
    group = [];
  };
  let header = true;
  for await (const line of createInterface({ input: createReadStream(older, { highWaterMark: 1 << 20 }), crlfDelay: Infinity })) {
    if (header) {
      buf += line + '\n';
      header = false;
      continue;
    }
    if (line === '') continue;
    if (group.length > 0 && !line.startsWith(group[0].slice(0, group[0].indexOf('\t') + 1))) await flush();
    group.push(line);
  }
  await flush();
  const fresh = Math.round(ids / 100);
  for (let n = 0; n < fresh; n++) {
    const gbifId = 6_000_000_000 + n * 7919;
    const host = `herbarium${Math.floor(rand() * rand() * 2000)}.example.org`;
    await write(`${gbifId}\tStillImage\timage/jpeg\thttps://${host}/media/${gbifId}/0/large.jpg?size=full\thttps://${host}/specimen/${gbifId}\t\t\t\t\t2026-11-30T10:00:00Z\tCollector ${gbifId % 977}\t\tHerbarium ${host}\t${LICENSES[n % LICENSES.length]}\tHerbarium ${host}`);
    changed.newIds++;
  }
  out.write(buf);
  out.end();
  await once(out, 'finish');
  return changed;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [path, rows] = process.argv.slice(2);
  const res = await generateMultimedia(path, { rows: Number(rows ?? 2_000_000) });
  console.log(JSON.stringify(res));
}

