/**
 * Whether a SQLite ledger's folder is on a network filesystem. SQLite's WAL
 * keeps an index of the log in shared memory (the -shm file, mapped), which
 * network filesystems do not keep coherent, and their locks are unreliable:
 * SQLite's own documentation says WAL does not work there, and the lab's
 * earlier tool, its ledger on GPFS, died with "disk I/O error". A ledger
 * there is not refused (on one machine some mounts hold up), but said once,
 * when it is opened, with what to do instead.
 */
import { statfsSync } from 'node:fs';

/**
 * statfs f_type magic numbers of network and cluster filesystems
 * (linux/magic.h and the filesystems' own); 9p is also how WSL2 mounts
 * Windows drives. FUSE is left out: one number for sshfs and for a rootless
 * container's own root (fuse-overlayfs), where a warning would cry wolf.
 */
const NETWORK: ReadonlyMap<number, string> = new Map([
  [0x6969, 'NFS'],
  [0xff534d42, 'CIFS'],
  [0xfe534d42, 'SMB2'],
  [0x517b, 'SMB'],
  [0x0bd00bd0, 'Lustre'],
  [0x47504653, 'GPFS'],
  [0x00c36400, 'CephFS'],
  [0x19830326, 'BeeGFS'],
  [0x01021997, '9p'],
  [0x6b414653, 'AFS'],
  [0x5346414f, 'OpenAFS'],
  [0x013111a8, 'IBRIX'],
]);

/** The name of the network filesystem with this statfs type, or undefined for a local one. */
export function networkFilesystemName(type: number): string | undefined {
  return NETWORK.get(type >>> 0);
}

/** The network filesystem `dir` is on, or undefined (a local disk, or one statfs cannot tell). */
export function networkFilesystem(dir: string): string | undefined {
  try {
    return networkFilesystemName(statfsSync(dir).type);
  } catch {
    return undefined;
  }
}

let warned = false;

/** Says once per process, on stderr, that the ledger at `location` (in `dir`) is on a network filesystem, if it is. */
export function warnIfNetworkFilesystem(location: string, dir: string): void {
  if (warned) return;
  const name = networkFilesystem(dir);
  if (!name) return;
  warned = true;
  process.stderr.write(
    `herbdl: ${location} is on a network filesystem (${name}), where SQLite's WAL can fail ("disk I/O error") or lose commits; keep the ledger on a local disk (the images may stay on the shared one), or use a PostgreSQL ledger for many machines\n`,
  );
}
