/**
 * TLS chains that lack an intermediate certificate. A server should send its
 * certificate with the intermediates up to a root; some herbarium servers
 * send their own alone, and Node, like curl and aria2c, then refuses every
 * connection to them (UNABLE_TO_VERIFY_LEAF_SIGNATURE): an institution's
 * images lost to a server setting. Browsers complete such a chain from the
 * address each certificate gives for its issuer (Authority Information
 * Access, "CA Issuers"), and so does herbdl, once per host: each issuer
 * fetched must be a CA that signed the certificate below it and must not be
 * self-issued, and the last must be signed by a root this process trusts.
 * The host's connections then verify against the roots with those issuers
 * beside them. An issuer so added is never a trust anchor: OpenSSL still
 * builds every chain up to a self-signed root (an intermediate alone in the
 * list verifies nothing: UNABLE_TO_GET_ISSUER_CERT, tested).
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isIP, type LookupFunction } from 'node:net';
import { connect as tlsConnect, createSecureContext, rootCertificates, type SecureContext } from 'node:tls';
import { Agent, request } from 'undici';

/** The verification errors of a chain the server sent short. */
export const INCOMPLETE_CHAIN = new Set(['UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY']);

/** Issuers fetched above a server's certificate at most: real chains have one or two intermediates. */
const MAX_DEPTH = 4;
/** A certificate is a few KB; anything larger is not one. */
const MAX_CERT_BYTES = 64 * 1024;

export interface Target {
  readonly hostname: string;
  readonly port: string | number;
  readonly servername?: string | null;
}

export class MissingIssuers {
  /** Each host's completion, once: the context to connect with, or undefined when its chain cannot be completed. */
  private readonly hosts = new Map<string, Promise<SecureContext | undefined>>();
  /** Hosts whose chains were completed: they connect with `context`. */
  private readonly completed = new Set<string>();
  private readonly fetched = new Map<string, Promise<X509Certificate | undefined>>();
  private readonly issuers = new Map<string, X509Certificate>();
  private context: SecureContext | undefined;
  private roots: { readonly pems: readonly string[]; readonly certs: readonly X509Certificate[] } | undefined;
  private agent: Agent | undefined;

  constructor(
    private readonly options: {
      readonly timeoutMs: number;
      /** Looks names up, refusing private addresses unless they are allowed (address-guard.ts). */
      readonly lookup: LookupFunction;
      /** Whether an address written into a URL is one the guard refuses (a name is checked by `lookup`). */
      readonly blocked: (address: string) => boolean;
    },
  ) {}

  /** The context `hostname` connects with, if its chain had to be completed. */
  contextFor(hostname: string): SecureContext | undefined {
    return this.completed.has(hostname) ? this.context : undefined;
  }

  /** Completes the chain `target` serves: the context that verifies it, or undefined (asked once per host). */
  complete(target: Target): Promise<SecureContext | undefined> {
    let done = this.hosts.get(target.hostname);
    if (!done) {
      done = this.issuersOf(target).then(
        (found) => {
          if (!found || found.length === 0) return undefined;
          for (const cert of found) this.issuers.set(cert.fingerprint256, cert);
          // One context for every completed host, holding every issuer learned: a superset verifies each.
          this.context = createSecureContext({ ca: [...this.trusted().pems, ...[...this.issuers.values()].map((c) => c.toString())] });
          this.completed.add(target.hostname);
          return this.context;
        },
        () => undefined,
      );
      this.hosts.set(target.hostname, done);
    }
    return done;
  }

  /** The issuers missing above the certificate `target` serves, up to a trusted root; undefined if the chain cannot be completed. */
  private async issuersOf(target: Target): Promise<X509Certificate[] | undefined> {
    let cert = await this.serverCertificate(target);
    const found: X509Certificate[] = [];
    for (let depth = 0; depth <= MAX_DEPTH; depth++) {
      if (this.trusted().certs.some((root) => cert.checkIssued(root) && cert.verify(root.publicKey))) return found;
      const url = /^CA Issuers - URI:(https?:\/\/\S+)$/m.exec(cert.infoAccess ?? '')?.[1];
      if (!url || depth === MAX_DEPTH) return undefined;
      const issuer = await this.fetchCertificate(url);
      // A CA that signed this certificate, and not one that signs itself: a root from the network is never trusted.
      if (!issuer || !issuer.ca || issuer.subject === issuer.issuer || !cert.checkIssued(issuer) || !cert.verify(issuer.publicKey)) return undefined;
      found.push(issuer);
      cert = issuer;
    }
    return undefined;
  }

  /** The certificate the server presents, read on a connection that does not verify it (and sends nothing over it). */
  private serverCertificate(target: Target): Promise<X509Certificate> {
    return new Promise((resolve, reject) => {
      const socket = tlsConnect({
        host: target.hostname,
        port: Number(target.port),
        ...(target.servername ? { servername: target.servername } : {}),
        lookup: this.options.lookup,
        rejectUnauthorized: false,
      });
      const timer = setTimeout(() => socket.destroy(new Error('timed out reading the server certificate')), this.options.timeoutMs);
      socket.once('secureConnect', () => {
        clearTimeout(timer);
        const cert = socket.getPeerX509Certificate();
        socket.destroy();
        if (cert) resolve(cert);
        else reject(new Error('no server certificate'));
      });
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
  }

  /** A certificate (DER or PEM) from a CA Issuers address, once per address. */
  private fetchCertificate(url: string): Promise<X509Certificate | undefined> {
    let cert = this.fetched.get(url);
    if (!cert) {
      const host = new URL(url).hostname.replace(/^\[|\]$/g, '');
      if (isIP(host) && this.options.blocked(host)) return Promise.resolve(undefined);
      this.agent ??= new Agent({ connect: { lookup: this.options.lookup, timeout: this.options.timeoutMs } });
      // reset: the connection closes after the answer, so nothing of it is left open at the run's end.
      cert = request(url, { dispatcher: this.agent, reset: true, headersTimeout: this.options.timeoutMs, bodyTimeout: this.options.timeoutMs }).then(
        async (response) => {
          const chunks: Buffer[] = [];
          let bytes = 0;
          for await (const chunk of response.body as AsyncIterable<Buffer>) {
            bytes += chunk.length;
            if (bytes > MAX_CERT_BYTES) {
              response.body.destroy();
              return undefined;
            }
            chunks.push(chunk);
          }
          return response.statusCode === 200 ? new X509Certificate(Buffer.concat(chunks)) : undefined;
        },
        () => undefined,
      ).catch(() => undefined);
      this.fetched.set(url, cert);
    }
    return cert;
  }

  /** The roots this process trusts: Node's, and those NODE_EXTRA_CA_CERTS adds. */
  private trusted(): { readonly pems: readonly string[]; readonly certs: readonly X509Certificate[] } {
    if (!this.roots) {
      const pems = [...rootCertificates];
      const extra = process.env.NODE_EXTRA_CA_CERTS;
      if (extra) {
        try {
          pems.push(...(readFileSync(extra, 'utf8').match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []));
        } catch {
          // Node has already warned that it could not read the file.
        }
      }
      const certs = pems.flatMap((pem) => {
        try {
          return [new X509Certificate(pem)];
        } catch {
          return [];
        }
      });
      this.roots = { pems, certs };
    }
    return this.roots;
  }
}
