/**
 * A self-signed certificate for loopback HTTPS servers in tests, made by
 * openssl (as a user would make one), naming the servers' addresses.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
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

export interface ShortChain {
  /** The root's certificate file: what NODE_EXTRA_CA_CERTS names to trust it. */
  readonly rootPath: string;
  /** The intermediate, DER, as a CA Issuers address serves it. */
  readonly intermediateDer: Buffer;
  /** The server's key and certificate, signed by the intermediate and sent without it; its CA Issuers address is `issuerUrl`. */
  readonly key: Buffer;
  readonly cert: Buffer;
  /** A forgery of the intermediate: the same name and key, signed by itself (a root, as a network attacker would serve it). */
  readonly forgedDer: Buffer;
}

/** root -> intermediate -> a certificate for `addresses` whose CA Issuers address is `issuerUrl`, made by openssl in `dir`. */
export function makeShortChain(dir: string, addresses: readonly string[], issuerUrl: string, name: string): ShortChain {
  const at = (file: string) => join(dir, `${name}-${file}`);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  const ca = ['-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'];
  writeFileSync(at('ca.ext'), 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n');
  writeFileSync(at('leaf.ext'), `subjectAltName=${addresses.map((a) => `IP:${a}`).join(',')}\nauthorityInfoAccess=caIssuers;URI:${issuerUrl}\n`);
  const steps = [
    ['req', '-x509', ...ec, '-keyout', at('root.key'), '-out', at('root.pem'), '-days', '1', '-subj', `/CN=${name} root`, ...ca],
    ['req', ...ec, '-keyout', at('int.key'), '-out', at('int.csr'), '-subj', `/CN=${name} intermediate`],
    ['x509', '-req', '-in', at('int.csr'), '-CA', at('root.pem'), '-CAkey', at('root.key'), '-CAcreateserial', '-out', at('int.pem'), '-days', '1', '-extfile', at('ca.ext')],
    ['req', ...ec, '-keyout', at('leaf.key'), '-out', at('leaf.csr'), '-subj', `/CN=${addresses[0]}`],
    ['x509', '-req', '-in', at('leaf.csr'), '-CA', at('int.pem'), '-CAkey', at('int.key'), '-CAcreateserial', '-out', at('leaf.pem'), '-days', '1', '-extfile', at('leaf.ext')],
    ['x509', '-in', at('int.pem'), '-outform', 'der', '-out', at('int.der')],
    ['req', '-x509', '-key', at('int.key'), '-outform', 'der', '-out', at('forged.der'), '-days', '1', '-subj', `/CN=${name} intermediate`, ...ca],
  ];
  for (const step of steps) {
    const made = spawnSync('openssl', step, { encoding: 'utf8' });
    if (made.status !== 0) throw new Error(`openssl could not make a test certificate chain: ${made.stderr}`);
  }
  return { rootPath: at('root.pem'), intermediateDer: readFileSync(at('int.der')), key: readFileSync(at('leaf.key')), cert: readFileSync(at('leaf.pem')), forgedDer: readFileSync(at('forged.der')) };
}
