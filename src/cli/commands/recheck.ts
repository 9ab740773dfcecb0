import { resolve } from 'node:path';
import type { Command } from 'commander';
import type { Ledger, RunLock, Tier } from '../../ledger/ledger.js';
import { makePlan, type Plan } from '../../recheck/plan.js';
import type { RecheckSummary } from '../../recheck/recheck.js';
import { withTreeHold } from '../../store/tree-hold.js';
import { VERSION } from '../version.js';
import { formatBytes, formatCount } from '../progress.js';
import type { OptionValues } from '../../config/options.js';
import { addOptions, optionValues, runWithLiveLine } from '../shared.js';
import { withRunLedger } from './run.js';

const KEYS = [
  'db', 'out', 'concurrency', 'perHost', 'timeout', 'deadline', 'breakerThreshold', 'breakerCooldown', 'breakerWindow', 'maxBytes',
  'jpegQuality', 'check', 'maxEdge', 'userAgent', 'allowPrivateNetwork', 'lease', 'tiers', 'budget', 'all', 'plan', 'json', 'progress',
] as const;
type Options = OptionValues<(typeof KEYS)[number]>;

const days = (n: number | null) => (n === null ? '-' : n >= 100 ? formatCount(Math.round(n)) : n.toFixed(1));

function planLines(p: Plan): string[] {
  const lines = [`recheck plan at ${new Date(p.at).toISOString()}: ${formatCount(p.images)} stored images, ${formatCount(p.dueNow)} due now`, '', 'tier                        images     due now   fall due per day'];
  for (const t of p.tiers) {
    const label = `every ${days(t.everyDays)} d${t.untilDays === null ? ' after that' : ` until ${days(t.untilDays)} d old`}`;
    lines.push(`${label.padEnd(26)} ${formatCount(t.images).padStart(8)} ${formatCount(t.dueNow).padStart(11)} ${formatCount(Math.round(t.duePerDay)).padStart(18)}`);
  }
  lines.push('', 'host (those that cannot keep up first)    due/day   rate/s   per day   days of records/day   behind/day   days for due now');
  for (const h of p.hosts) {
    lines.push(
      `${h.host.padEnd(40)} ${formatCount(Math.round(h.duePerDay)).padStart(8)} ${(h.rate === null ? '-' : h.rate.toFixed(1)).padStart(8)} ${(h.perDay === null ? '-' : formatCount(Math.round(h.perDay))).padStart(9)} ${days(h.daysPerDay).padStart(21)} ${formatCount(Math.round(h.behindPerDay)).padStart(12)} ${days(h.daysForDueNow).padStart(18)}`,
    );
  }
  if (p.hosts.some((h) => h.rate === null)) lines.push('', 'rate -: no run has measured that host yet');
  return lines;
}

function summaryLines(s: RecheckSummary): string[] {
  const later = Object.entries(s.later);
  const lines = [
    `${s.interrupted ? 'recheck interrupted' : 'rechecked'} ${formatCount(s.checked)} images in ${(s.elapsedMs / 1000).toFixed(1)} s, ${formatBytes(s.bytes)} received`,
    `  confirmed   ${formatCount(s.notModified + s.sameBytes)} (${formatCount(s.notModified)} not modified, no body; ${formatCount(s.sameBytes)} by their bytes)`,
    `  changed     ${formatCount(s.changed)} replaced by the new version, their gbifIDs published anew`,
    `  gone        ${formatCount(s.gone)} (404 or 410 at the source; files kept until herbdl prune)`,
  ];
  if (s.restored > 0) lines.push(`  restored    ${formatCount(s.restored)} stored files that were gone or cut short (a size not the recorded one), fetched whole again: the same version, put back`);
  if (later.length > 0) lines.push(`  later       ${later.map(([code, n]) => `${code} ${formatCount(n)}`).join(', ')} (no verdict: asked again at a later recheck)`);
  return lines;
}

async function printPlan(ledger: Ledger, tiers: readonly Tier[], json: boolean): Promise<void> {
  const at = Date.now();
  const { rows, rates } = await ledger.plan(tiers, at);
  const plan = makePlan(tiers, rows, rates, at);
  process.stdout.write(json ? JSON.stringify(plan) + '\n' : planLines(plan).join('\n') + '\n');
}

async function runRecheck(ledger: Ledger, lock: RunLock, options: Options): Promise<void> {
  const { recheck } = await import('../../recheck/recheck.js');
  const { createAgent, userAgent } = await import('../../fetch/http-client.js');
  const { createValidatorPool } = await import('../../validate/validator-pool.js');
  const out = resolve(options.out);
  await withTreeHold(ledger, lock, out, {}, async ({ downloads, publisher, temps }) => {
    const validator = createValidatorPool({ jpegQuality: options.jpegQuality, maxEdge: options.maxEdge, check: options.check });
    const agent = createAgent({ timeoutMs: options.timeout * 1000, perHost: options.perHost, concurrency: options.concurrency, allowPrivateNetwork: options.allowPrivateNetwork });
    const openBreakers = await downloads.openBreakers();
    try {
      await runWithLiveLine(
        ' recheck | {checked} images | {confirmed} confirmed | {changed} changed | {gone} gone',
        options,
        async (signal, onProgress) => {
          const summary = await recheck(downloads, {
            out,
            temps,
            concurrency: options.concurrency,
            perHost: options.perHost,
            breakerThreshold: options.breakerThreshold,
            breakerCooldownMs: options.breakerCooldown * 1000,
            breakerWindowMs: options.breakerWindow * 1000,
            fetch: { agent, userAgent: userAgent(VERSION, options.userAgent), deadlineMs: options.deadline * 1000, maxBytes: options.maxBytes, allowPrivateNetwork: options.allowPrivateNetwork },
            tiers: options.all ? 'all' : options.tiers,
            budget: options.budget,
            validator,
            publisher,
            openBreakers,
            signal,
            onProgress,
          });
          // What status shows of freshness: measured now, after the recheck, under the tiers asked for.
          const at = Date.now();
          const { rows } = await ledger.plan(options.tiers, at);
          const overdue = rows.reduce((n, r) => n + r.due, 0);
          await downloads.recordFreshness({ at, current: rows.reduce((n, r) => n + r.images, 0) - overdue, overdue });
          return summary;
        },
        (s) => ({ checked: formatCount(s.checked), confirmed: formatCount(s.notModified + s.sameBytes), changed: formatCount(s.changed), gone: formatCount(s.gone) }),
        summaryLines,
      );
    } finally {
      await agent.destroy();
      await validator.close();
    }
  });
}

export function registerRecheck(program: Command): void {
  const command = program
    .command('recheck')
    .description("ask the hosts again for the stored images that are due (by age): conditional requests; unchanged ones confirmed, changed ones replaced, gone ones marked; --plan says how long a round takes at each host's rate");
  addOptions(command, KEYS);
  command.action(async (_flags, cmd: Command) => {
    const options = optionValues(cmd, KEYS);
    if (options.plan) {
      const { openLedger } = await import('../../ledger/open.js');
      const ledger = await openLedger(options.db, { create: false });
      try {
        await printPlan(ledger, options.tiers, options.json);
      } finally {
        await ledger.close();
      }
      return;
    }
    await withRunLedger(options.db, options.lease, (ledger, lock) => runRecheck(ledger, lock, options));
  });
}
