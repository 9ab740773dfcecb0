/**
 * A disk that fills up is the machine's problem, never an image's: the
 * command stops in one line naming where (exit 1 for the images folder, 4
 * for the ledger), no image is failed for it, every done gbifID keeps its
 * files, and the same command finishes once there is room.
 *
 * The small disks are real: a tmpfs of a few MB, mounted in a mount namespace
 * of the CLI's own (`unshare`, which needs no privilege where user namespaces
 * are allowed, as on Debian), so the test leaves nothing mounted behind.
 * A full disk on a PostgreSQL server is its answer, SQLSTATE 53100, raised
 * here by a trigger with the server's own words.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { generateMultimedia } from '../bench/gen-multimedia.mjs';
import { fileSystemErrno, vipsSystemError } from '../src/errors.js';
import { BIN, commandAsync, herbdl, herbdlJson, tempDir } from './helpers/cli.js';
import { imageServers } from './helpers/image-server.js';
import type { IngestJson, StatusJson } from './helpers/ledger.js';
import { writeMultimedia } from './helpers/multimedia.js';
import { expectConsistentPgTree, pgWorkspace } from './helpers/pg-run.js';
import { freshDatabase, query } from './helpers/postgres.js';
import { doneFiles, treeFiles, workspace } from './helpers/run.js';

/** A herbarium-sheet-like image of 400 x 600 (light paper, noise): about 110 KB as JPEG, 600 KB as PNG. */
async function sheet(seed: number, format: 'jpeg' | 'png'): Promise<Buffer> {
  const image = sharp({ create: { width: 400, height: 600, channels: 3, background: '#d8d0c0', noise: { type: 'gaussian', mean: 180 + seed * 5, sigma: 30 } } });
  return format === 'png' ? image.png().toBuffer() : image.jpeg({ quality: 85 }).toBuffer();
}

interface Step {
  readonly status: number | null;
  readonly stderr: string;
}

/**
 * Runs shell `steps` in a mount namespace of their own, with a tmpfs of
 * `sizeKb` mounted on `disk` (`$NODE`, `$BIN` and `$DISK` set for them).
 * Each step's exit status and stderr land in `dir` as step-N.status and
 * step-N.err. Asynchronous: the test's own servers answer meanwhile.
 */
async function onSmallDisk(dir: string, disk: string, sizeKb: number, steps: readonly string[]): Promise<Step[]> {
  mkdirSync(disk, { recursive: true });
  const script = [
    'set -u',
    `mount -t tmpfs -o size=${sizeKb}k herbdl-test "$DISK" || exit 90`,
    // In braces: a step's own redirections (onto the small disk) win over these.
    ...steps.map((step, i) => `{ ${step}; } > "${dir}/step-${i}.out" 2> "${dir}/step-${i}.err"; echo $? > "${dir}/step-${i}.status"`),
  ].join('\n');
  const r = await commandAsync('unshare', ['--user', '--map-root-user', '--mount', 'sh', '-c', script], { env: { NODE: process.execPath, BIN, DISK: disk }, timeoutMs: 150_000 });
  if (r.status !== 0) throw new Error(`unshare exited ${r.status}: ${r.stderr}`);
  return steps.map((_, i) => ({ status: Number(readFileSync(join(dir, `step-${i}.status`), 'utf8')), stderr: readFileSync(join(dir, `step-${i}.err`), 'utf8') }));
}

/** The one line a command said, checked to be one line and no stack. */
function oneLine(step: Step): string {
  const lines = step.stderr.trim().split('\n');
  expect(lines, step.stderr).toHaveLength(1);
  expect(step.stderr).not.toMatch(/unexpected error|    at /);
  return lines[0] as string;
}

describe('a disk that fills up', () => {
  const dir = tempDir();

  it('under the images folder: one line naming the file, no image failed for it, every done gbifID with its files, and the next run finishes once there is room', async () => {
    // JPEG sheets on two hosts, PNG ones (converted to JPEG: libvips writes) on two more; 90 gbifIDs, about 15 MB once stored.
    const hosts = await imageServers(4, 120);
    const bodies = await Promise.all([0, 1, 2, 3].map((seed) => sheet(seed, seed < 2 ? 'jpeg' : 'png')));
    const rows: [number, string][] = [];
    for (let i = 0; i < 90; i++) {
      for (let n = 0; n < 1 + (i % 2); n++) {
        const h = (i + n) % 4;
        rows.push([3_000_000 + i, hosts[h]!.route(`/sheet-${i}-${n}.${h < 2 ? 'jpg' : 'png'}`, { kind: 'image', body: bodies[h] })]);
      }
    }
    const ws = workspace(dir, rows);
    const disk = join(dir, 'small-disk');
    const images = join(disk, 'images');
    const run = `"$NODE" "$BIN" run --db "${ws.db}" --out "${images}" --allow-private-network --concurrency 16`;
    // The tree lives only while the namespace does: each run's is copied out to be checked.
    const atFull = join(dir, 'at-full');
    mkdirSync(atFull);
    const [full, , , grown, again] = await onSmallDisk(dir, disk, 2048, [
      run,
      `cp -a "${images}" "${atFull}/tree"`,
      `cp "${ws.db}" "${atFull}/ledger.db"`,
      'mount -o remount,size=65536k "$DISK"',
      run,
      `cp -a "${images}" "${dir}/tree-after"`,
    ]);

    expect(full!.status).toBe(1);
    const at = images.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    expect(oneLine(full!)).toMatch(new RegExp(`^herbdl: ENOSPC: no space left on device, \\w+ '${at}/[^']+'; free space there and run the command again \\(what it had finished is kept\\)$`));
    // The ledger and the tree as the full disk left them (the run closed its ledger, so the file is whole).
    const ledgerAtFull = join(atFull, 'ledger.db');
    const afterFull = herbdlJson<StatusJson>(['status', '--db', ledgerAtFull]);
    // A full disk fails no image: every gbifID not done is still pending, to be fetched again.
    expect(afterFull.ids.failed).toBe(0);
    expect(afterFull.ids.pending).toBeGreaterThan(0);
    const kept = new Set(treeFiles(join(atFull, 'tree')));
    for (const file of doneFiles({ ...ws, db: ledgerAtFull })) expect(kept.has(file), file).toBe(true);

    expect(grown!.status).toBe(0);
    expect(again!.status, again!.stderr).toBe(0);
    const done = herbdlJson<StatusJson>(['status', '--db', ws.db]);
    expect(done.ids).toMatchObject({ total: 90, done: 90, failed: 0, pending: 0 });
    expect(treeFiles(join(dir, 'tree-after')).filter((f) => !f.startsWith('.herbdl-tmp'))).toEqual(doneFiles(ws));
  });

  it('a write the file system takes only part of is finished or refused, never left short: the image is not failed as truncated', async () => {
    // A file size limit (RLIMIT_FSIZE) makes the write that crosses it short, with no error, as a disk filling up does;
    // the next write is refused (EFBIG). A body over 512 KB goes to its temporary file as it arrives.
    const [host] = await imageServers(1, 125);
    const body = await sharp({ create: { width: 1200, height: 1800, channels: 3, background: '#d8d0c0', noise: { type: 'gaussian', mean: 180, sigma: 30 } } }).jpeg({ quality: 85 }).toBuffer();
    expect(body.length).toBeGreaterThan(800_000);
    const ws = workspace(dir, [[3_500_000, host!.route('/large-sheet.jpg', { kind: 'image', body })]]);
    const r = await commandAsync('prlimit', [`--fsize=${body.length - 100}`, process.execPath, BIN, 'run', '--db', ws.db, '--out', ws.out, '--allow-private-network'], { timeoutMs: 60_000 });
    expect(r.status, r.stderr).toBe(1);
    expect(oneLine(r)).toMatch(/^herbdl: EFBIG: file too large, write '.+\.part'$/);
    expect(herbdlJson<StatusJson>(['status', '--db', ws.db]).ids).toMatchObject({ failed: 0, pending: 1 });
    expect(host!.count('/large-sheet.jpg')).toBe(1);
  });

  it('under an export or a pack: one line naming the file, nothing half-written left, and the same command finishes once there is room', async () => {
    const [host] = await imageServers(1, 126);
    const body = await sheet(1, 'jpeg');
    const ws = workspace(dir, Array.from({ length: 60 }, (_, i): [number, string] => [3_600_000 + i, host!.route(`/packed-${i}.jpg`, { kind: 'image', body })]));
    expect((await ws.run()).json.idsDone).toBe(60);
    const disk = join(dir, 'output-disk');
    const exportTo = (format: string) => `"$NODE" "$BIN" export --db "${ws.db}" --state all --format ${format} --out-file "$DISK/images.${format}"`;
    const pack = `"$NODE" "$BIN" pack --db "${ws.db}" --images "${ws.out}" --out "$DISK/shards" --shard-size 4`;
    // 1 MB, filled up for the exports; then room for one or two of the fifteen shards of about 450 KB.
    const steps = await onSmallDisk(dir, disk, 1024, [
      'dd if=/dev/zero of="$DISK/filler" bs=64k',
      exportTo('csv'),
      exportTo('parquet'),
      'rm "$DISK/filler"',
      pack,
      'ls -A "$DISK" "$DISK/shards"',
      'mount -o remount,size=16384k "$DISK"',
      pack,
      'ls -A "$DISK/shards"',
    ]);
    const [, csv, parquet, , packFull, , , packAgain] = steps;
    for (const [step, file] of [[csv!, 'images.csv'], [parquet!, 'images.parquet']] as const) {
      expect(step.status).toBe(1);
      expect(oneLine(step)).toBe(`herbdl: ENOSPC: no space left on device, write '${disk}/${file}'; free space there and run the command again (what it had finished is kept)`);
    }
    expect(packFull!.status).toBe(1);
    expect(oneLine(packFull!)).toMatch(/^herbdl: ENOSPC: no space left on device, write '.+\/shards\/herbdl-0000\d\d\.[a-z.]+\.\d+\.part'; free space there/);
    // Finished shards and the tar being written when the disk filled (it has no stats, so it is not finished); no temporary.
    const listed = readFileSync(join(dir, 'step-5.out'), 'utf8');
    expect(listed).not.toMatch(/\.part|images\.(csv|parquet)/);
    expect(listed).toMatch(/herbdl-000000\.tar/);
    expect(packAgain!.status, packAgain!.stderr).toBe(0);
    const shards = readFileSync(join(dir, 'step-8.out'), 'utf8').split('\n').filter((f) => f.endsWith('.tar'));
    expect(shards).toEqual(Array.from({ length: 15 }, (_, i) => `herbdl-${String(i).padStart(6, '0')}.tar`));
  });

  it('under the temporary folder an exclusion sorts in: one line naming it (exit 1), and the list is not blamed', async () => {
    // A million IDs at a time are sorted and set aside in the temporary folder, while the list is still read.
    const list = join(dir, 'excluded.txt');
    writeFileSync(list, Array.from({ length: 2_500_000 }, (_, i) => String(9_000_000 + ((i * 7919) % 2_500_000))).join('\n') + '\n');
    const ledger = join(dir, 'exclude.db');
    herbdlJson(['ingest', writeMultimedia(join(dir, 'exclude-rows.txt'), [[1, 'https://a.example.org/1.jpg']]), '--db', ledger]);
    const [exclude] = await onSmallDisk(dir, join(dir, 'temp-disk'), 64, [`TMPDIR="$DISK" "$NODE" "$BIN" exclude "${list}" --db "${ledger}"`]);
    expect(exclude!.status).toBe(1);
    expect(oneLine(exclude!)).toMatch(/^herbdl: sorting the listed gbifIDs in .+ \(a temporary folder: TMPDIR names another\): ENOSPC: no space left on device, write; free space there/);
  });

  it("libvips's refusal to write (a converted image, a derivative) reads as the file system's, not as an image that does not decode", async () => {
    // /dev/full refuses every write with ENOSPC: what libvips then says is what it says on a full disk.
    const refused = await sharp({ create: { width: 64, height: 48, channels: 3, background: '#d8d0c0' } })
      .jpeg()
      .toFile('/dev/full')
      .then(() => undefined, (err: unknown) => err);
    expect((refused as Error).message).toContain('system error: No space left on device');
    const said = vipsSystemError(refused, '/x/1-00.jpg.w256');
    expect(said).toMatchObject({ code: 'ENOSPC', path: '/x/1-00.jpg.w256', message: "ENOSPC: no space left on device, write '/x/1-00.jpg.w256'" });
    expect(fileSystemErrno(said)).toBe('ENOSPC');
    expect(vipsSystemError(new Error('VipsJpeg: Premature end of JPEG file'), '/x/1-00.jpg')).toBeUndefined();
  });

  it('under a SQLite ledger: an ingest says so in one line (exit 4), blames no input file, and leaves no ledger behind', async () => {
    const file = join(dir, 'many-rows.txt');
    await generateMultimedia(file, { rows: 40_000, hosts: 50 });
    const disk = join(dir, 'ledger-disk');
    const [ingest] = await onSmallDisk(dir, disk, 512, [`"$NODE" "$BIN" ingest "${file}" --db "$DISK/herbdl.db"`, 'ls -A "$DISK"']);
    expect(ingest!.status).toBe(4);
    expect(oneLine(ingest!)).toBe("herbdl: the ledger's disk is full (database or disk is full); what was committed stays: free space for it, then run the command again");
    expect(readFileSync(join(dir, 'step-1.out'), 'utf8')).toBe('');
    // With room, the same file ingests whole.
    const ledger = join(dir, 'roomy.db');
    expect(herbdlJson<IngestJson>(['ingest', file, '--db', ledger]).rowsRead).toBe(40_000);
  });

  it("on a PostgreSQL server: an ingest and a run each stop in one line (exit 4), and finish once it has room", async () => {
    const noSpace = `CREATE FUNCTION no_space() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
       RAISE EXCEPTION USING ERRCODE = 'disk_full', MESSAGE = 'could not extend file "base/16384/16411": No space left on device'; END $$`;
    const said = "herbdl: the ledger's server has no disk space left (could not extend file \"base/16384/16411\": No space left on device); what was committed stays: free space for it, then run the command again";

    // A bulk load: rows stream in 1 MB COPY messages, and the server's refusal comes back while more are on their way.
    const db = await freshDatabase('disk_full_ingest');
    const empty = writeMultimedia(join(dir, 'header-only.txt'), []);
    herbdlJson(['ingest', empty, '--db', db]);
    await query(db, noSpace);
    await query(db, 'CREATE TRIGGER no_space BEFORE INSERT ON images FOR EACH ROW EXECUTE FUNCTION no_space()');
    const file = join(dir, 'pg-rows.txt');
    await generateMultimedia(file, { rows: 30_000, hosts: 50 });
    const refused = herbdl(['ingest', file, '--db', db]);
    expect(refused.status).toBe(4);
    expect(oneLine(refused)).toBe(said);
    await query(db, 'DROP TRIGGER no_space ON images');
    expect(herbdlJson<IngestJson>(['ingest', file, '--db', db]).rowsRead).toBe(30_000);
    expect((await query<{ n: number }>(db, 'SELECT count(*)::int AS n FROM images'))[0]!.n).toBeGreaterThan(0);

    // A run: the server refuses to mark the later gbifIDs done.
    const hosts = await imageServers(2, 130);
    const body = await sheet(0, 'jpeg');
    const rows: [number, string][] = Array.from({ length: 60 }, (_, i) => [4_000_000 + i, hosts[i % 2]!.route(`/pg-${i}.jpg`, { kind: 'image', body })]);
    const ws = await pgWorkspace(dir, 'disk_full_run', rows);
    await query(ws.db, noSpace);
    await query(ws.db, `CREATE TRIGGER no_space BEFORE UPDATE ON ids FOR EACH ROW WHEN (NEW.state = 1 AND NEW.gbif_id >= 4000030) EXECUTE FUNCTION no_space()`);
    const stopped = ws.worker(['--concurrency', '8']);
    expect(await stopped.exited).toBe(4);
    expect(oneLine({ status: 4, stderr: stopped.stderr() })).toBe(said);
    expect(existsSync(ws.out)).toBe(true);
    for (const file of await ws.doneFiles()) expect(ws.files()).toContain(file);
    await query(ws.db, 'DROP TRIGGER no_space ON ids');
    const again = ws.worker(['--concurrency', '8']);
    expect(await again.exited, again.stderr()).toBe(0);
    expect((await query<{ n: number }>(ws.db, 'SELECT count(*)::int AS n FROM ids WHERE state = 1'))[0]!.n).toBe(60);
    await expectConsistentPgTree(ws);
  });
});
