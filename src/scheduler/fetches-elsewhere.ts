/**
 * Images whose URL another worker is fetching (ClaimedImage.elsewhere, on a
 * shared ledger): they wait here, holding no request slot, and the ledger is
 * asked about all their URLs at once, at most once a POLL_MS, until each has
 * a stored copy to link or its fetch has come to this worker.
 *
 * A stored copy shows only once the other worker's gbifID is published
 * whole, so a wait is bounded (--shared-wait): after it, the image is
 * fetched here too. A request twice is better than a run with no end, which
 * two gbifIDs each waiting on a URL the other's worker holds would make.
 */
import type { DownloadLedger, StoredCopy } from '../ledger/ledger.js';
import type { Task } from './task.js';

/** How often waiting URLs are asked after: a link a second late costs nothing, a statement per image would. */
const POLL_MS = 1000;

export interface ElsewhereHooks {
  /** The task's image now has its stored copy, or is this worker's to fetch: route it again. */
  resolved(task: Task): void;
  /** The ledger could not be asked; the next tick asks again. */
  failed(err: unknown): void;
  /** A URL waited on for longer than the bound: its images are fetched here too. */
  gaveUp(url: string, waitedMs: number): void;
}

export class FetchesElsewhere {
  /** By URL: its waiting images, and when the first began to wait. */
  private readonly byUrl = new Map<string, { readonly since: number; tasks: Task[] }>();
  private timer: NodeJS.Timeout | undefined;
  private asking = false;

  constructor(
    private readonly ledger: DownloadLedger,
    /** How long a URL is waited on before its images are fetched here too. */
    private readonly maxWaitMs: number,
    private readonly hooks: ElsewhereHooks,
  ) {}

  wait(task: Task): void {
    const waiting = this.byUrl.get(task.image.url);
    if (waiting) waiting.tasks.push(task);
    else this.byUrl.set(task.image.url, { since: Date.now(), tasks: [task] });
    // Unreferenced: a run that ends stops it, and it never holds the process up.
    this.timer ??= setInterval(() => void this.ask(), POLL_MS).unref();
  }

  /** Stops asking (the run is over); what waits is left with its gbifIDs. */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private async ask(): Promise<void> {
    if (this.asking) return;
    const now = Date.now();
    for (const [url, waiting] of this.byUrl) {
      waiting.tasks = waiting.tasks.filter((t) => !t.job.settled);
      if (waiting.tasks.length === 0) this.byUrl.delete(url);
      else if (now - waiting.since > this.maxWaitMs) {
        this.hooks.gaveUp(url, now - waiting.since);
        this.answer(url, 'ours');
      }
    }
    if (this.byUrl.size === 0) return this.stop();
    this.asking = true;
    let answers: Map<string, StoredCopy | 'ours'>;
    try {
      answers = await this.ledger.fetchesElsewhere([...this.byUrl.keys()]);
    } catch (err) {
      this.hooks.failed(err);
      return;
    } finally {
      this.asking = false;
    }
    for (const [url, answer] of answers) this.answer(url, answer);
    if (this.byUrl.size === 0) this.stop();
  }

  /** Routes the URL's waiting images again: to link the stored copy, or to fetch here. */
  private answer(url: string, answer: StoredCopy | 'ours'): void {
    const tasks = this.byUrl.get(url)?.tasks ?? [];
    this.byUrl.delete(url);
    for (const task of tasks) {
      if (task.job.settled) continue;
      task.image = answer === 'ours' ? { ...task.image, elsewhere: false } : { ...task.image, elsewhere: false, stored: answer };
      this.hooks.resolved(task);
    }
  }
}
