/**
 * A SQLite ledger on a network filesystem is said once, when it is opened:
 * SQLite's WAL does not work there (the lab's ledger on GPFS died with
 * "disk I/O error"). The filesystem is told by statfs's type; a network
 * mount cannot be made here, so the types are checked against the numbers
 * Linux gives, and a ledger on this machine's own disk says nothing.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { networkFilesystem, networkFilesystemName } from '../src/ledger/sqlite/filesystem.js';
import { herbdl, tempDir } from './helpers/cli.js';
import { writeMultimedia } from './helpers/multimedia.js';

describe('a SQLite ledger on a network filesystem', () => {
  it('is told by statfs type: NFS, SMB, Lustre, GPFS, CephFS, BeeGFS and 9p mounts, not local filesystems', () => {
    expect([0x6969, 0xfe534d42, 0x0bd00bd0, 0x47504653, 0x00c36400, 0x19830326, 0x01021997].map(networkFilesystemName)).toEqual(['NFS', 'SMB2', 'Lustre', 'GPFS', 'CephFS', 'BeeGFS', '9p']);
    // CIFS's number as a signed 32-bit f_type, as some platforms give it.
    expect(networkFilesystemName(0xff534d42 | 0)).toBe('CIFS');
    // ext4, XFS, Btrfs, tmpfs, ZFS, overlayfs, and FUSE (a rootless container's root is fuse-overlayfs).
    expect([0xef53, 0x58465342, 0x9123683e, 0x01021994, 0x2fc12fc1, 0x794c7630, 0x65735546].map(networkFilesystemName)).toEqual([undefined, undefined, undefined, undefined, undefined, undefined, undefined]);
  });

  it('says nothing of a ledger on a local disk', () => {
    const dir = tempDir();
    expect(networkFilesystem(dir)).toBeUndefined();
    const db = join(dir, 'local.db');
    const r = herbdl(['ingest', '--db', db, writeMultimedia(join(dir, 'm.txt'), [[1_000_000_001, 'https://h.example/1.jpg']])]);
    expect(r).toMatchObject({ status: 0, stderr: '' });
    expect(herbdl(['status', '--db', db]).stderr).toBe('');
  });
});
