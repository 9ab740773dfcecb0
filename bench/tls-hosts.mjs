// Certificates for loopback HTTPS hosts (bench:run scenario 11): a CA and a
// leaf per hundred addresses, each naming its hundred by IP, as a CDN's
// certificate names many hosts. Made once with openssl into bench/out/tls
// and kept. Real hosts are HTTPS: what a connection costs there is what a
// run over thousands of them pays.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const PER_CERT = 100;

/** { ca, key, certs: { address: certPath }, index } for these addresses, made if missing; `index` is the file image-server.mjs reads (BENCH_TLS). */
export function tlsHosts(addresses) {
  const dir = join(here, 'out', 'tls');
  const index = join(dir, `hosts-${addresses.length}.json`);
  if (existsSync(index)) return { ...JSON.parse(readFileSync(index, 'utf8')), index };
  mkdirSync(dir, { recursive: true });
  const ca = join(dir, 'ca.pem');
  const caKey = join(dir, 'ca.key');
  const key = join(dir, 'leaf.key');
  const openssl = (...args) => execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  if (!existsSync(ca)) {
    openssl('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', caKey);
    openssl('req', '-x509', '-new', '-key', caKey, '-out', ca, '-days', '30', '-subj', '/CN=herbdl bench CA');
    openssl('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', key);
  }
  const csr = join(dir, 'leaf.csr');
  openssl('req', '-new', '-key', key, '-out', csr, '-subj', '/CN=herbdl bench host');
  const certs = {};
  for (let at = 0; at < addresses.length; at += PER_CERT) {
    const group = addresses.slice(at, at + PER_CERT);
    const ext = join(dir, `leaf-${addresses.length}-${at}.cnf`);
    writeFileSync(ext, `[ext]\nbasicConstraints = CA:FALSE\nkeyUsage = digitalSignature\nextendedKeyUsage = serverAuth\nsubjectAltName = ${group.map((a) => `IP:${a}`).join(',')}\n`);
    const cert = join(dir, `leaf-${addresses.length}-${at}.pem`);
    openssl('x509', '-req', '-in', csr, '-CA', ca, '-CAkey', caKey, '-CAcreateserial', '-out', cert, '-days', '30', '-extfile', ext, '-extensions', 'ext');
    for (const a of group) certs[a] = cert;
  }
  const made = { ca, key, certs };
  writeFileSync(index, JSON.stringify(made));
  return { ...made, index };
}
