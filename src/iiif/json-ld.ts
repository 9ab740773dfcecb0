/**
 * Reading IIIF's JSON-LD the way real files are written, not the way the
 * specs hope: `id` or `@id`, `type` or `@type`, a value or an array of them,
 * contexts as a string or an array (or missing).
 */

export type Node = Record<string, unknown>;

export function isNode(value: unknown): value is Node {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A property that may hold one node or an array of them, as an array of nodes. */
export function nodes(value: unknown): Node[] {
  if (Array.isArray(value)) return value.filter(isNode);
  return isNode(value) ? [value] : [];
}

export function idOf(node: Node): string | undefined {
  const id = node['id'] ?? node['@id'];
  return typeof id === 'string' && id.trim() !== '' ? id.trim() : undefined;
}

export function typeOf(node: Node): string {
  const type = node['type'] ?? node['@type'];
  const first = Array.isArray(type) ? type[0] : type;
  return typeof first === 'string' ? first : '';
}

/** Every context URI of a node, as one string to search. */
export function contextOf(node: Node): string {
  const context = node['@context'];
  const list = Array.isArray(context) ? context : [context];
  return list.filter((c): c is string => typeof c === 'string').join(' ');
}

/** A profile given as a string, an array of strings and objects, or an object. */
export function profileOf(node: Node): string {
  const profile = node['profile'];
  const list = Array.isArray(profile) ? profile : [profile];
  return list.filter((p): p is string => typeof p === 'string').join(' ');
}

export function positive(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) && value > 0 ? Math.floor(value) : undefined;
}
