/**
 * Labels: fields of a GBIF download's occurrence file (scientificName,
 * family, taxonKey, ...) kept per gbifID, for what hands images to training
 * (pack's .json, export's columns). `herbdl labels` loads them whole, each
 * time replacing what the ledger had: rows go where the ledger's labels are
 * not (a scratch file beside a SQLite ledger, a table of their own on
 * PostgreSQL), batch by batch, and become the ledger's labels in one swap
 * at the end. A load killed half-way leaves the labels before it as
 * they were, and the next load starts over. A load marks itself in the
 * ledger as the one loading: a second load started meanwhile takes over,
 * and the first stops at its next batch, so their rows never mix.
 */
import { LedgerError } from '../errors.js';

/** A gbifID's labels, in the order of the ledger's label fields. */
export interface LabelRow {
  readonly gbifId: number;
  readonly values: readonly string[];
}

export interface LabelWriter {
  /** Adds rows; a gbifID given twice keeps its last row. Throws LedgerError (labels_taken_over) if another load has begun since. */
  add(rows: readonly LabelRow[]): Promise<void>;
  /** Makes the loaded rows the ledger's labels, in place of any before; returns how many of the ledger's gbifIDs have them. */
  finish(): Promise<{ readonly labelled: number }>;
  /** Leaves the labels as they were (what was loaded goes with the next load). */
  close(): Promise<void>;
}

/** The label fields and how many gbifIDs of the ledger had labels when they were loaded. */
export interface LabelSummary {
  readonly fields: readonly string[];
  readonly ids: number;
}

/** Where the ledger keeps its label fields (a JSON array), the count, and the mark of the load under way. */
export const LABEL_FIELDS = 'label_fields';
export const LABELLED_IDS = 'labelled_ids';
export const LABELS_LOADING = 'labels_loading';

/** A row's values as stored: a JSON array, so any text survives. */
export const storedValues = (values: readonly string[]) => JSON.stringify(values);
export const valuesOf = (stored: string) => JSON.parse(stored) as string[];

/** The status field for a ledger's labels: there once a load has ended. */
export function labelsOf(summary: LabelSummary | undefined): { labels?: LabelSummary } {
  return summary ? { labels: summary } : {};
}

/** A mark for one load: unique across processes and machines. */
export function loadMark(): string {
  return `${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2)}`;
}

export function takenOver(location: string): LedgerError {
  return new LedgerError(`${location}: another herbdl labels began loading labels into this ledger after this one; it carries on, and this one stops (the labels before both are kept until one ends)`, 'labels_taken_over');
}

/**
 * A ledger's labels read beside its images, both in gbifID order (pack,
 * export): asked for each image's gbifID in turn, it walks the labels once.
 */
export class LabelCursor {
  private head: LabelRow | undefined;

  private constructor(
    readonly fields: readonly string[],
    private readonly rows: AsyncIterator<LabelRow>,
  ) {}

  /** Undefined when the ledger has no labels (no load has ended). */
  static async open(ledger: { labelSummary(): Promise<LabelSummary | undefined>; labels(): AsyncIterable<LabelRow> }): Promise<LabelCursor | undefined> {
    const summary = await ledger.labelSummary();
    if (!summary) return undefined;
    const cursor = new LabelCursor(summary.fields, ledger.labels()[Symbol.asyncIterator]());
    await cursor.step();
    return cursor;
  }

  private async step(): Promise<void> {
    const next = await this.rows.next();
    this.head = next.done ? undefined : next.value;
  }

  /** The values of `gbifId`'s labels, or undefined if it has none; asked in ascending gbifID order. */
  async of(gbifId: number): Promise<readonly string[] | undefined> {
    while (this.head && this.head.gbifId < gbifId) await this.step();
    return this.head?.gbifId === gbifId ? this.head.values : undefined;
  }

  /** Ends the read of the labels' pages, however the reader ends. */
  async close(): Promise<void> {
    await this.rows.return?.(undefined);
  }
}
