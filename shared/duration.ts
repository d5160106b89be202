/**
 * Durations as Prometheus and Kubernetes users write them: `100ms`, `1s`, `1m30s`, `2h`.
 * A bare number is rejected on purpose: `1` could mean seconds or milliseconds.
 */

const UNIT_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };
const PART = /(\d+(?:\.\d+)?)(ms|s|m|h)/y;

export type DurationResult = { ok: true; ms: number } | { ok: false; error: string };

export function parseDuration(text: string): DurationResult {
  const input = text.trim();
  if (input === '') return { ok: false, error: 'empty duration' };
  let total = 0;
  PART.lastIndex = 0;
  while (PART.lastIndex < input.length) {
    const at = PART.lastIndex;
    const m = PART.exec(input);
    if (!m) {
      return { ok: false, error: `"${text}" is not a duration like 500ms, 1s or 1m30s (at "${input.slice(at)}")` };
    }
    total += Number(m[1]) * (UNIT_MS[m[2] ?? ''] ?? NaN);
  }
  if (!Number.isFinite(total)) return { ok: false, error: `"${text}" is out of range` };
  return { ok: true, ms: Math.round(total) };
}

/** Parses and checks bounds; the error says what was wrong and what is allowed. */
export function parseBoundedDuration(text: string, bounds: { minMs: number; maxMs: number }): DurationResult {
  const r = parseDuration(text);
  if (!r.ok) return r;
  if (r.ms < bounds.minMs || r.ms > bounds.maxMs) {
    return { ok: false, error: `"${text}" is outside ${formatDuration(bounds.minMs)}…${formatDuration(bounds.maxMs)}` };
  }
  return r;
}

export function formatDuration(ms: number): string {
  if (ms % 3_600_000 === 0 && ms > 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0 && ms > 0) return `${ms / 60_000}m`;
  if (ms % 1_000 === 0 && ms > 0) return `${ms / 1_000}s`;
  return `${ms}ms`;
}
