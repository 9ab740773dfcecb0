/**
 * Numbers for values that repeat across rows (hosts, attributions), so each
 * crosses from the worker to the main thread once, not once per row.
 *
 * An attribution is found through two keys, each one lookup: its kind (type
 * and format) and its rights (licence, rights holder and publisher). A key
 * is the stretch of the line that holds those columns, cut out as it lies, so
 * no key is built per row (rows read the slow way, by classifyRow, are
 * numbered by their packed attribution instead). Two keys that differ only in a column between
 * (an old column order puts audience and source among the rights) give two
 * numbers for one attribution; the ledger keeps it once all the same.
 */
import { packAttribution, type Attribution } from '../input/rows.js';

/** Values of any kind numbered before the numbering starts again (a dataset with very varied rows). */
const MAX_NUMBERED = 50_000;
/** Kinds and rights stay below this (MAX_NUMBERED plus one chunk's rows), so (kind, rights) is one exact number. */
const KEY_LIMIT = 1 << 20;

/**
 * A copy of a string that does not hold on to the chunk it was cut from (V8
 * keeps a substring as a view of its parent: keeping one would keep the whole
 * chunk's text alive for as long as it is kept).
 */
function own(text: string): string {
  return (' ' + text).slice(1);
}

export class Numbering {
  private readonly hosts = new Map<string, number>();
  private readonly kinds = new Map<string, number>();
  private readonly rightsKeys = new Map<string, number>();
  private readonly attributions = new Map<number, number>();
  /** Attributions of rows read the slow way, by their packed text (kept apart: those keys are not stretches of a line). */
  private readonly packedAttributions = new Map<string, number>();
  private attributionCount = 0;
  private freshHosts: string[] = [];
  private freshAttributions: string[] = [];

  /** True when the numbering should start again, so memory stays bounded and keys exact. Asked between chunks. */
  get full(): boolean {
    return Math.max(this.hosts.size, this.kinds.size, this.rightsKeys.size, this.attributionCount) >= MAX_NUMBERED;
  }

  host(name: string): number {
    let n = this.hosts.get(name);
    if (n === undefined) {
      n = this.hosts.size;
      const kept = own(name);
      this.hosts.set(kept, n);
      this.freshHosts.push(kept);
    }
    return n;
  }

  /** The number of a kind key (the line's type and format columns). */
  kind(key: string): number {
    return numberOf(this.kinds, key);
  }

  /** The number of a rights key (the line's licence, rights holder and publisher columns). */
  rights(key: string): number {
    return numberOf(this.rightsKeys, key);
  }

  /** An attribution by its keys' numbers; `pack` is asked for its text only when it is new. */
  attributionOf(kind: number, rights: number, pack: () => string): number {
    const key = kind * KEY_LIMIT + rights;
    let n = this.attributions.get(key);
    if (n === undefined) {
      n = this.attributionCount++;
      this.attributions.set(key, n);
      this.freshAttributions.push(pack());
    }
    return n;
  }

  /** An attribution given in fields (rows read the slow way). */
  attribution(a: Attribution): number {
    const packed = packAttribution(a);
    let n = this.packedAttributions.get(packed);
    if (n === undefined) {
      n = this.attributionCount++;
      this.packedAttributions.set(packed, n);
      this.freshAttributions.push(packed);
    }
    return n;
  }

  /** What was numbered since the last call, in number order. */
  take(): { hosts: string[]; attributions: string[] } {
    const fresh = { hosts: this.freshHosts, attributions: this.freshAttributions };
    this.freshHosts = [];
    this.freshAttributions = [];
    return fresh;
  }
}

function numberOf(numbers: Map<string, number>, key: string): number {
  let n = numbers.get(key);
  if (n === undefined) {
    n = numbers.size;
    numbers.set(own(key), n);
  }
  return n;
}
