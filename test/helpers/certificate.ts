/**
 * A self-signed certificate for loopback HTTPS servers in tests, made by
 * openssl (as a user would make one), naming the servers' addresses.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface Certificate {
  readonly key: Buffer;
  readonly cert: Buffer;
  /** The certificate's file: what NODE_EXTRA_CA_CERTS names to trust it. */
  readonly certPath: string;
}

/** A key and a certificate for `addresses` (IP literals), written into `dir`. */
export function makeCertificate(dir: string, addresses: readonly string[], keyType: 'rsa' | 'ec' = 'ec'): Certificate {
  const keyPath = join(dir, 'key.pem');
  const certPath = join(dir, 'cert.pem');
  const newKey = keyType === 'rsa' ? ['-newkey', 'rsa:2048'] : ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1'];
  const names = addresses.map((a) => `IP:${a}`).join(',');
  const made = spawnSync('openssl', ['req', '-x509', ...newKey, '-nodes', '-keyout', keyPath, '-out', certPath, '-days', '1', '-subj', `/CN=${addresses[0]}`, '-addext', `subjectAltName=${names}`], { encoding: 'utf8' });
  if (made.status !== 0) throw new Error(`openssl could not make a test certificate: ${made.stderr}`);
  return { key: readFileSync(keyPath), cert: readFileSync(certPath), certPath };
}
