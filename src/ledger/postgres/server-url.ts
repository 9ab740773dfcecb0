/**
 * What herbdl makes of a shared ledger's URL before it connects (TLS as
 * psql takes it, the URL as it may be shown), and a server that will not
 * have it, said in one line that names the server, never the password.
 */
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { LedgerError } from '../../errors.js';

/** The URL as it may be shown: without its password. */
export function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return 'postgres://…';
  }
}

export function describeConnectFailure(url: string, err: unknown): LedgerError {
  const e = err as { code?: string; message?: string };
  const where = redact(url);
  const say = (problem: string, code: string) => new LedgerError(`${where}: ${problem}`, code, { cause: err });
  switch (e.code) {
    case 'ECONNREFUSED':
    case 'ENOTFOUND':
    case 'EHOSTUNREACH':
    case 'ETIMEDOUT':
    case 'EAI_AGAIN':
      return say(`cannot reach the PostgreSQL server (${e.code})`, 'ledger_unreachable');
    case '28P01':
    case '28000':
      // pg, unlike psql, does not try TLS unless asked: a server whose pg_hba.conf takes only TLS refuses it so.
      if (/no encryption/.test(e.message ?? '')) return say(`the server takes only TLS connections from here (${e.message}); add sslmode=require to the URL, or set PGSSLMODE=require`, 'ledger_auth');
      return say(`the server refused the credentials (${e.message})`, 'ledger_auth');
    case '53300':
      return say(`the server has no connection free (${e.message}): each herbdl worker holds up to ${POOL_CONNECTIONS}; raise max_connections or start fewer workers`, 'ledger_full');
    case '3D000':
      return say(`${e.message}; create it first (createdb)`, 'ledger_missing');
    case '42501':
      return say(`the role may not do what herbdl needs (${e.message}): herbdl makes and writes its tables in the database's schema; have their owner grant it that, or give the role a database of its own (createdb -O <role>)`, 'ledger_privilege');
    default:
      return say(`cannot open ledger (${e.message ?? String(err)})`, 'ledger_open');
  }
}

/** Connections a ledger's pool holds at most: six for a run's statements, one held by its heartbeat (worker-lease.ts). */
export const POOL_CONNECTIONS = 7;

/**
 * The URL with TLS settings as libpq (psql) takes them: pg alone takes
 * `sslmode=require` (or `prefer`) to mean verify-full, so a server with a
 * self-signed certificate (Debian's package makes one) that psql reaches
 * with `require` was refused, and every command printed pg's six-line
 * warning about it. PGSSLMODE, PGSSLROOTCERT, PGSSLCERT and PGSSLKEY, which
 * pg does not read, fill in what the URL does not say, and a verify-*
 * mode trusts ~/.postgresql/root.crt when no root is named, as libpq's do.
 * pg's own `no-verify` is left as it is. A URL that does not parse is
 * passed on unchanged, for pg to say what is wrong with it.
 */
export function libpqTls(url: string, env: NodeJS.ProcessEnv = process.env): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return url;
  }
  const q = u.searchParams;
  const fill = (param: string, variable: string) => {
    if (!q.has(param) && env[variable]) q.set(param, env[variable] as string);
  };
  fill('sslmode', 'PGSSLMODE');
  const mode = q.get('sslmode');
  if (!mode) return url;
  if (mode !== 'no-verify' && mode !== 'disable') {
    fill('sslrootcert', 'PGSSLROOTCERT');
    fill('sslcert', 'PGSSLCERT');
    fill('sslkey', 'PGSSLKEY');
    const root = join(homedir(), '.postgresql', 'root.crt');
    if (mode.startsWith('verify') && !q.has('sslrootcert') && existsSync(root)) q.set('sslrootcert', root);
    if (!q.has('uselibpqcompat')) q.set('uselibpqcompat', 'true');
  }
  return u.toString();
}
