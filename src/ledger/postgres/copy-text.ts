/** Values in COPY's text format: tab-separated, `\N` for null, backslash, tab and line ends escaped. */
const ESCAPES: Record<string, string> = { '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r' };

export function copyText(s: string): string {
  return /[\\\t\n\r]/.test(s) ? s.replace(/[\\\t\n\r]/g, (c) => ESCAPES[c] as string) : s;
}

export function copyValue(v: unknown): string {
  return v === null || v === undefined ? '\\N' : copyText(String(v));
}
