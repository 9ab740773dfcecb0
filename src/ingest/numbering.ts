/**
 * Numbers for values that repeat across rows (hosts, attributions), so each
 * crosses from the worker to the main thread once, not once per row.
 * An attribution is found by a hash of its fields (a number: cheap to look
 * up, where a joined string key would be built and hashed per row), and
 * confirmed field by field, so a collision only costs a second lookup.
 */
import { packAttribution, type Attribution } from '../input/rows.js';

interface Entry extends Attribution {
  readonly n: number;
}

function hashField(h: number, s: string): number {
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return Math.imul(h ^ 0x1f, 0x01000193);
}

function same(e: Attribution, a: Attribution): boolean {
  return e.license === a.license && e.rightsHolder === a.rightsHolder && e.publisher === a.publisher && e.type === a.type && e.format === a.format;
}

/**
 * A copy of a field that does not hold on to the chunk it was split from (V8
 * keeps a substring as a view of its parent: keeping one would keep the whole
 * chunk's text alive for as long as the numbering lives).
 */
function own(field: string): string {
  return (' ' + field).slice(1);
}

export class Numbering {
  private readonly hosts = new Map<string, number>();
  private readonly byHash = new Map<number, Entry>();
  /** Attributions whose hash another one had first. */
  private readonly collided = new Map<string, Entry>();
  private attributionCount = 0;
  private freshHosts: string[] = [];
  private freshAttributions: string[] = [];

  get size(): number {
    return Math.max(this.hosts.size, this.attributionCount);
  }

  host(name: string): number {
    let n = this.hosts.get(name);
    if (n === undefined) {
      n = this.hosts.size;
      this.hosts.set(name, n);
      this.freshHosts.push(name);
    }
    return n;
  }

  attribution(a: Attribution): number {
    let h = 0x811c9dc5;
    h = hashField(h, a.type);
    h = hashField(h, a.format);
    h = hashField(h, a.license);
    h = hashField(h, a.rightsHolder);
    h = hashField(h, a.publisher);
    const found = this.byHash.get(h);
    if (found && same(found, a)) return found.n;
    const packed = packAttribution(a);
    if (found) {
      const other = this.collided.get(packed);
      if (other) return other.n;
    }
    const entry: Entry = { type: own(a.type), format: own(a.format), license: own(a.license), rightsHolder: own(a.rightsHolder), publisher: own(a.publisher), n: this.attributionCount++ };
    if (found) this.collided.set(packed, entry);
    else this.byHash.set(h, entry);
    this.freshAttributions.push(packed);
    return entry.n;
  }

  /** What was numbered since the last call, in number order. */
  take(): { hosts: string[]; attributions: string[] } {
    const fresh = { hosts: this.freshHosts, attributions: this.freshAttributions };
    this.freshHosts = [];
    this.freshAttributions = [];
    return fresh;
  }
}
