/**
 * Numbers for values that repeat across rows (hosts, attributions), so each
 * crosses from the worker to the main thread once, not once per row.
 * An attribution is found through its fields, each numbered on its own (a
 * lookup by a short string, hashed by V8 natively), then through the numbers
 * combined: no joined key is built or hashed per row.
 */
import { packAttribution, type Attribution } from '../input/rows.js';

/** Hosts or attributions numbered before the numbering starts again (a dataset with very varied rows). */
const MAX_NUMBERED = 50_000;
/** Distinct values of one field before the numbering starts again (three combined must fit in 53 bits). */
const FIELD_LIMIT = 1 << 17;

/**
 * A copy of a field that does not hold on to the chunk it was split from (V8
 * keeps a substring as a view of its parent: keeping one would keep the whole
 * chunk's text alive for as long as the numbering lives).
 */
function own(field: string): string {
  return (' ' + field).slice(1);
}

class FieldNumbers {
  private readonly numbers = new Map<string, number>();

  get size(): number {
    return this.numbers.size;
  }

  of(value: string): number {
    let n = this.numbers.get(value);
    if (n === undefined) {
      n = this.numbers.size;
      this.numbers.set(own(value), n);
    }
    return n;
  }
}

export class Numbering {
  private readonly hosts = new Map<string, number>();
  private readonly fields = [new FieldNumbers(), new FieldNumbers(), new FieldNumbers(), new FieldNumbers(), new FieldNumbers()] as const;
  /** By (type, format), then by (license, rightsHolder, publisher): each key a number built from field numbers. */
  private readonly attributions = new Map<number, Map<number, number>>();
  private attributionCount = 0;
  private freshHosts: string[] = [];
  private freshAttributions: string[] = [];

  /** True when the numbering should start again: bounded memory, and field numbers that fit their key. */
  get full(): boolean {
    return this.hosts.size >= MAX_NUMBERED || this.attributionCount >= MAX_NUMBERED || this.fields.some((f) => f.size >= FIELD_LIMIT);
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

  attribution(a: Attribution): number {
    const [type, format, license, rightsHolder, publisher] = this.fields;
    const kind = type.of(a.type) * FIELD_LIMIT + format.of(a.format);
    const rights = (license.of(a.license) * FIELD_LIMIT + rightsHolder.of(a.rightsHolder)) * FIELD_LIMIT + publisher.of(a.publisher);
    let byRights = this.attributions.get(kind);
    if (!byRights) {
      byRights = new Map();
      this.attributions.set(kind, byRights);
    }
    let n = byRights.get(rights);
    if (n === undefined) {
      n = this.attributionCount++;
      byRights.set(rights, n);
      this.freshAttributions.push(packAttribution(a));
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
