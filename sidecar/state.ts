/**
 * What the sidecar has acknowledged, kept where a restart of its container does not lose it
 * (README "Restarts"). The kubelet restarts a native sidecar that dies; the new one must not send
 * an explicit 0 and the whole value again under the same `pod` label (the aggregator would read
 * the 0 as a counter reset and count everything twice). The webhook mounts an emptyDir for it,
 * which lives as long as the pod.
 *
 * Written after every acknowledged delivery (and every one that may have arrived), atomically:
 * a temporary file renamed over the old one, so a SIGKILL mid-write leaves the previous state.
 * Checking what is read is pure (parseState); reading and writing are a thin layer.
 */
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { SeriesSnapshot, StoreSnapshot } from './series-store.ts';

export const STATE_FILE = 'series-state.json';
const FORMAT = 1;

export type LoadResult =
  | { readonly found: false }
  | { readonly found: true; readonly ok: true; readonly snapshot: StoreSnapshot }
  | { readonly found: true; readonly ok: false; readonly error: string };

/** Checks a state file's text: its format, that it belongs to `pod`, and every field's type. */
export function parseState(text: string, pod: string): { ok: true; snapshot: StoreSnapshot } | { ok: false; error: string } {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    return { ok: false, error: `not JSON: ${(e as Error).message}` };
  }
  if (!isObject(value) || value['format'] !== FORMAT) return { ok: false, error: `not a state file of format ${FORMAT}` };
  if (value['pod'] !== pod) return { ok: false, error: `belongs to pod ${JSON.stringify(value['pod'])}, not ${JSON.stringify(pod)}` };
  const generation = value['generation'];
  if (!isCount(generation)) return { ok: false, error: 'generation is not a count' };
  const lastAckMs = value['lastAckMs'];
  if (lastAckMs !== undefined && !isNumber(lastAckMs)) return { ok: false, error: 'lastAckMs is not a number' };
  const list = value['series'];
  if (!Array.isArray(list)) return { ok: false, error: 'series is not a list' };
  const series: SeriesSnapshot[] = [];
  for (const [i, r] of list.entries()) {
    const s = seriesOf(r);
    if (typeof s === 'string') return { ok: false, error: `series[${i}]: ${s}` };
    series.push(s);
  }
  return { ok: true, snapshot: { pod, generation, ...(lastAckMs !== undefined && { lastAckMs }), series } };
}

/** The text of a state file. */
export function formatState(snapshot: StoreSnapshot): string {
  return JSON.stringify({ format: FORMAT, ...snapshot });
}

export function loadState(dir: string, pod: string): LoadResult {
  let text: string;
  try {
    text = readFileSync(join(dir, STATE_FILE), 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { found: false };
    return { found: true, ok: false, error: `cannot read ${join(dir, STATE_FILE)}: ${(e as Error).message}` };
  }
  const r = parseState(text, pod);
  return r.ok ? { found: true, ok: true, snapshot: r.snapshot } : { found: true, ok: false, error: `${join(dir, STATE_FILE)}: ${r.error}` };
}

/** Writes the state atomically; throws with the path in the message when it cannot. */
export function saveState(dir: string, snapshot: StoreSnapshot): void {
  const path = join(dir, STATE_FILE);
  const tmp = `${path}.tmp`;
  try {
    writeFileSync(tmp, formatState(snapshot));
    renameSync(tmp, path);
  } catch (cause) {
    throw new Error(`cannot write the sidecar state ${path}: ${(cause as Error).message}`, { cause });
  }
}

function seriesOf(r: unknown): SeriesSnapshot | string {
  if (!isObject(r)) return 'not an object';
  const { name, labels, raw, timestampMs, base, offset, zeroTimestampMs, acked, ackedTotal, maybeTotal } = r;
  if (typeof name !== 'string') return 'name is not a string';
  if (!Array.isArray(labels) || !labels.every((l) => Array.isArray(l) && l.length === 2 && typeof l[0] === 'string' && typeof l[1] === 'string')) {
    return 'labels are not [name, value] pairs';
  }
  for (const [field, v] of Object.entries({ raw, timestampMs, base, offset, zeroTimestampMs })) if (!isNumber(v)) return `${field} is not a number`;
  if (acked !== undefined && !(isObject(acked) && isNumber(acked['value']) && isNumber(acked['timestampMs']))) return 'acked is not a sample';
  if (ackedTotal !== undefined && !isNumber(ackedTotal)) return 'ackedTotal is not a number';
  if (maybeTotal !== undefined && !isNumber(maybeTotal)) return 'maybeTotal is not a number';
  return {
    name,
    labels: labels as Array<[string, string]>,
    raw: raw as number,
    timestampMs: timestampMs as number,
    base: base as number,
    offset: offset as number,
    zeroTimestampMs: zeroTimestampMs as number,
    ...(acked !== undefined && { acked: acked as { value: number; timestampMs: number } }),
    ...(ackedTotal !== undefined && { ackedTotal }),
    ...(maybeTotal !== undefined && { maybeTotal }),
  };
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isNumber = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const isCount = (v: unknown): v is number => Number.isInteger(v) && (v as number) >= 0;
