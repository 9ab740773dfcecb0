/**
 * A PostgreSQL server that accepts only TLS, with a self-signed certificate
 * (as Debian's package sets one up), reached as psql reaches it:
 * `sslmode=require` (or PGSSLMODE) encrypts without verifying, `verify-full`
 * verifies against the root it is given, and a command prints nothing but
 * its own output.
 */
import { chmodSync, chownSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { serverUser, startCluster } from '../bench/pg-cluster.mjs';
import { herbdl, tempDir } from './helpers/cli.js';
import { makeCertificate } from './helpers/certificate.js';
import { multimediaSamples } from './helpers/samples.js';

describe('a PostgreSQL server that accepts only TLS', async () => {
  // Files the server reads: its own (a key must be), in a folder it may enter.
  const files = mkdtempSync(join(tmpdir(), 'herbdl-pg-tls-'));
  chmodSync(files, 0o755);
  const { certPath } = makeCertificate(files, ['127.0.0.1']);
  const keyPath = join(files, 'key.pem');
  const hba = join(files, 'hba.conf');
  writeFileSync(hba, 'local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject\n');
  chmodSync(keyPath, 0o600);
  const user = serverUser();
  if (user) for (const f of [keyPath, certPath, hba]) chownSync(f, user.uid, user.gid);
  const cluster = await startCluster(`-c ssl=on -c ssl_cert_file=${certPath} -c ssl_key_file=${keyPath} -c hba_file=${hba}`);
  afterAll(() => {
    cluster.stop();
    rmSync(files, { recursive: true, force: true });
  });
  const home = tempDir(); // no ~/.postgresql/root.crt of the machine's user is trusted here
  const env = (extra: Record<string, string> = {}) => ({ env: { HOME: home, PGSSLMODE: '', ...extra } });
  const url = (query: string) => `${cluster.url}${query}`;
  const sample = multimediaSamples()[0] as string;

  it('sslmode=require, in the URL or as PGSSLMODE, encrypts without verifying the certificate, as for psql, and prints nothing of it', () => {
    const ingested = herbdl(['ingest', sample, '--db', url('?sslmode=require'), '--json'], env());
    expect(ingested.stderr).toBe('');
    expect(ingested.status).toBe(0);
    expect(JSON.parse(ingested.stdout)).toMatchObject({ interrupted: false });
    const status = herbdl(['status', '--db', cluster.url, '--json'], env({ PGSSLMODE: 'require' }));
    expect(status.stderr).toBe('');
    expect(status.status).toBe(0);
    expect(JSON.parse(status.stdout).ids.total).toBe(JSON.parse(ingested.stdout).gbifIds);
  });

  it('without sslmode the server refuses in one line; verify-full verifies, against the root named', () => {
    const plain = herbdl(['status', '--db', cluster.url], env());
    expect(plain.status).toBe(4);
    expect(plain.stderr.trim().split('\n')).toEqual([expect.stringMatching(/: the server takes only TLS connections from here \(.*no encryption\); add sslmode=require to the URL, or set PGSSLMODE=require$/)]);
    const unverified = herbdl(['status', '--db', url('?sslmode=verify-full')], env());
    expect(unverified.status).toBe(4);
    expect(unverified.stderr.trim().split('\n')).toEqual([expect.stringMatching(/cannot open ledger \(self[- ]signed certificate/)]);
    const verified = herbdl(['status', '--db', url(`?sslmode=verify-full&sslrootcert=${encodeURIComponent(certPath)}`)], env());
    expect(verified.stderr).toBe('');
    expect(verified.status).toBe(0);
    // As libpq does, PGSSLROOTCERT names the root when the URL does not.
    const byEnv = herbdl(['status', '--db', url('?sslmode=verify-full')], env({ PGSSLROOTCERT: certPath }));
    expect(byEnv.stderr).toBe('');
    expect(byEnv.status).toBe(0);
  });
});
