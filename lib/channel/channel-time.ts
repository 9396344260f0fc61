/**
 * Durations and times of the channel formats: `90s`, `12h`, `7d` (also `m` minutes and `w`
 * weeks) and ISO 8601 times in UTC. Pure.
 */

const UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400, w: 604800 };

/** Seconds of a duration like `90s`, `12h`, `7d`, or null when malformed (or zero). */
export function parseDuration(text: string): number | null {
  const m = /^([1-9][0-9]{0,8})([smhdw])$/.exec(text.trim());
  return m === null ? null : Number(m[1]) * UNITS[m[2]]!;
}

/** A duration in the largest unit that divides it: 604800 -> `7d`, 5400 -> `90m`. */
export function formatDuration(seconds: number): string {
  for (const u of ['w', 'd', 'h', 'm'] as const) if (seconds % UNITS[u]! === 0) return `${seconds / UNITS[u]!}${u}`;
  return `${seconds}s`;
}

/** Milliseconds since the epoch of an ISO 8601 time with a zone (`Z` or `+01:00`), or null. */
export function parseIsoTime(text: string): number | null {
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$/.test(text)) return null;
  const ms = Date.parse(text);
  return Number.isFinite(ms) ? ms : null;
}

/** A time as the formats write it: ISO 8601 UTC, whole seconds (`2026-12-03T12:00:00Z`). */
export function isoSeconds(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace('.000Z', 'Z');
}
