import type { Command } from 'commander';
import type { LedgerStatus, StateCounts, WorkerStatus } from '../../ledger/ledger.js';
import { openLedger } from '../../ledger/open.js';
import { formatCount } from '../progress.js';
import { addOptions, optionValues } from '../shared.js';

function counts(label: string, c: StateCounts): string {
  const excluded = c.excluded > 0 ? `  excluded ${formatCount(c.excluded)}` : '';
  const removed = c.removed > 0 ? `  removed ${formatCount(c.removed)} (a newer export lacks them)` : '';
  return `${label.padEnd(9)} total ${formatCount(c.total)}  pending ${formatCount(c.pending)}  done ${formatCount(c.done)}  failed ${formatCount(c.failed)}${excluded}${removed}`;
}

/** The leaderboard of a shared ledger's workers: live ones first. */
function workerLines(workers: readonly WorkerStatus[]): string[] {
  const ago = (t: number) => `${Math.max(0, Math.round((Date.now() - t) / 1000))} s ago`;
  const rows = workers.map((w) => [
    w.worker,
    new Date(w.since).toISOString().slice(0, 19) + 'Z',
    ago(w.heartbeat),
    formatCount(w.claimed),
    formatCount(w.setAside),
    formatCount(w.done),
    w.imagesPerSecond.toFixed(1),
    formatCount(w.failed),
    w.stopped ? 'stopped' : w.expired ? 'lease expired' : 'live',
  ]);
  const head = ['worker', 'since', 'heartbeat', 'claimed', 'set aside', 'done', 'images/s', 'failed', ''];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] as string).length)));
  const line = (r: string[]) => r.map((c, i) => (i < 3 || i === 8 ? c.padEnd(widths[i] as number) : c.padStart(widths[i] as number))).join('  ').trimEnd();
  return ['workers:', line(head), ...rows.map(line)];
}

function printStatus(s: LedgerStatus, db: string): void {
  const lines = [`ledger ${db}`, counts('gbifIDs', s.ids), counts('images', s.images)];
  if (s.derivatives.length > 0) lines.push(`derived   ${s.derivatives.map((d) => `w${d.width} ${formatCount(d.ids)} gbifIDs`).join('  ')}`);
  const f = s.freshness;
  if (f.last || f.changed > 0 || f.gone > 0) {
    const last = f.last ? `as of the last recheck (${new Date(f.last.at).toISOString()}): ${formatCount(f.last.current)} confirmed within their tier, ${formatCount(f.last.overdue)} overdue; ` : '';
    lines.push(`freshness ${last}${formatCount(f.changed)} changed and replaced, ${formatCount(f.gone)} gone at the source (files kept until herbdl prune)`);
    if (f.goneIds.length > 0) lines.push(`          gone images' gbifIDs: ${f.goneIds.join(', ')}${f.gone > f.goneIds.length ? ', ...' : ''}`);
  }
  const v = s.verified;
  if (v) {
    const found = v.brokenIds === 0 ? 'every file as recorded' : `${formatCount(v.missing)} missing, ${formatCount(v.damaged)} damaged, ${formatCount(v.brokenIds)} gbifIDs affected${v.reopened > 0 ? `, ${formatCount(v.reopened)} made pending again` : ''}`;
    lines.push(`verified  ${new Date(v.at).toISOString()}${v.interrupted ? ` (interrupted: up to gbifID ${v.checkedThrough ?? 0})` : ''}, ${v.hash ? 'sizes and sha256' : 'sizes'}: ${formatCount(v.files)} files of ${formatCount(v.ids)} done gbifIDs, ${found}`);
  }
  if (s.labels) lines.push(`labels    ${s.labels.fields.join(', ')}: ${formatCount(s.labels.ids)} gbifIDs labelled when they were loaded (herbdl labels)`);
  if (!s.complete) lines.push('note: an ingest into this ledger is running or was interrupted; gbifID counts are complete once it finishes (run the ingest again)');
  if (s.hosts.length > 0) {
    const width = Math.max(4, ...s.hosts.map((h) => h.host.length));
    lines.push('', `${'host'.padEnd(width)}  ${['images', 'pending', 'done', 'failed'].map((h) => h.padStart(10)).join('')}`);
    for (const h of s.hosts) {
      lines.push(`${h.host.padEnd(width)}  ${[h.images, h.pending, h.done, h.failed].map((n) => formatCount(n).padStart(10)).join('')}`);
    }
  }
  if (s.blockedHosts.length > 0) {
    lines.push('', `blocked: ${formatCount(s.blocked.hosts)} ${s.blocked.hosts === 1 ? 'host' : 'hosts'} with the breaker open, their gbifIDs waiting (pending) until each may be probed:`);
    for (const h of s.blockedHosts) {
      const ids = h.blockedIds === undefined ? '' : `${formatCount(h.blockedIds)} gbifIDs, `;
      lines.push(`  ${h.host}  ${ids}${formatCount(h.pending)} images pending, probe after ${new Date(h.breakerOpenUntil ?? 0).toISOString()}`);
    }
    const more = s.blocked.hosts - s.blockedHosts.length;
    if (more > 0) {
      const listed = s.blockedHosts.reduce((n, h) => n + h.pending, 0);
      lines.push(`  and ${formatCount(more)} more ${more === 1 ? 'host' : 'hosts'}, ${formatCount(s.blocked.pending - listed)} images pending (--hosts ${s.blocked.hosts} lists them all)`);
    }
    lines.push('  (a host that is back: herbdl retry-failed --host <host> closes its breaker and takes its gbifIDs up at once)');
  }
  if (s.workers.length > 0) lines.push('', ...workerLines(s.workers));
  const errors = Object.entries(s.errors);
  lines.push('', errors.length === 0 ? 'failures: none' : 'failures by reason:');
  for (const [code, n] of errors) lines.push(`  ${code.padEnd(24)} ${formatCount(n)}`);
  if (s.errorsByHost.length > 0) {
    lines.push('', 'failures by host:');
    for (const e of s.errorsByHost) lines.push(`  ${e.host}  ${e.code}  ${formatCount(e.images)}`);
  }
  if (errors.length > 0) lines.push('', "take failures up again with: herbdl retry-failed [--host <host>] [--error <code>]");
  process.stdout.write(lines.join('\n') + '\n');
}

export function registerStatus(program: Command): void {
  const command = program.command('status').description('where every gbifID and image stands: counts by state, busiest hosts, failures by reason');
  addOptions(command, ['db', 'json', 'hosts']);
  command.action(async (_flags, cmd: Command) => {
    const options = optionValues(cmd, ['db', 'json', 'hosts']);
    const ledger = await openLedger(options.db, { create: false });
    try {
      const status = await ledger.status({ hosts: options.hosts });
      if (options.json) process.stdout.write(JSON.stringify(status) + '\n');
      else printStatus(status, options.db);
    } finally {
      await ledger.close();
    }
  });
}
