/**
 * What the sidecar has acknowledged, kept where a restart of its container does not lose it
 * (docs/sidecar.md "Restarts"). The kubelet restarts a native sidecar that dies; the new one must not send
 * an explicit 0 and the whole value again under the same `pod` label (the aggregator would read
 * the 0 as a counter reset and count everything twice). The webhook mounts an emptyDir for it,
 * which lives as long as the pod.
 *
 * Written after every acknowledged delivery (and every one that may have arrived), atomically:
 * a temporary file renamed over the old one, so a SIGKILL mid-write leaves the previous state.
 * Checking what is read is pure (parseState); reading and writing are a thin layer.
 * The file is trusted for delivery state only: the labels the sidecar sets (`namespace`, `job`,
 * `pod`) always come from its settings, whatever the file says (SeriesStore.restore).
 *
 * The file is JSON with one array per counter rather than an object, which halves its size and
 * the time to write it (the write happens on every acknowledged push; its size and cost at 1 000
 * series: bench/sidecar-costs.ts):
 *
 *   {"format":1,"pod":"…","generation":0,"lastAckMs":…,"series":[
 *     [name, [label, value, …], raw, timestampMs, base, offset, zeroTimestampMs,
 *      ackedValue|null, ackedTimestampMs|null, ackedTotal|null, maybeTotal|null], …]}
 */
import { fs } from '../shared/node-builtins.ts';
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
  const lastAckMs = value['lastAckMs'] ?? undefined;
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
  const series = snapshot.series.map((r) => [
    r.name,
    r.labels.flat(),
    r.raw,
    r.timestampMs,
    r.base,
    r.offset,
    r.zeroTimestampMs,
    r.acked?.value ?? null,
    r.acked?.timestampMs ?? null,
    r.ackedTotal ?? null,
    r.maybeTotal ?? null,
  ]);
  return JSON.stringify({ format: FORMAT, pod: snapshot.pod, generation: snapshot.generation, lastAckMs: snapshot.lastAckMs ?? null, series });
}

export function loadState(dir: string, pod: string): LoadResult {
  let text: string;
  try {
    text = fs.readFileSync(join(dir, STATE_FILE), 'utf8');
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
    fs.writeFileSync(tmp, formatState(snapshot));
    fs.renameSync(tmp, path);
  } catch (cause) {
    throw new Error(`cannot write the sidecar state ${path}: ${(cause as Error).message}`, { cause });
  }
}

function seriesOf(r: unknown): SeriesSnapshot | string {
  if (!Array.isArray(r) || r.length !== 11) return 'not a list of 11 fields';
  const [name, flat, raw, timestampMs, base, offset, zeroTimestampMs, ackedValue, ackedTimestampMs, ackedTotal, maybeTotal] = r as unknown[];
  if (typeof name !== 'string') return 'name is not a string';
  if (!Array.isArray(flat) || flat.length % 2 !== 0 || !flat.every((x) => typeof x === 'string')) return 'labels are not name, value pairs';
  const labels: Array<readonly [string, string]> = [];
  for (let i = 0; i < flat.length; i += 2) labels.push([flat[i] as string, flat[i + 1] as string]);
  const numbers = { raw, timestampMs, base, offset, zeroTimestampMs };
  for (const [field, v] of Object.entries(numbers)) if (!isNumber(v)) return `${field} is not a number`;
  const optional = { ackedValue, ackedTimestampMs, ackedTotal, maybeTotal };
  for (const [field, v] of Object.entries(optional)) if (v !== null && !isNumber(v)) return `${field} is neither a number nor null`;
  if ((ackedValue === null) !== (ackedTimestampMs === null)) return 'ackedValue and ackedTimestampMs must both be set or both null';
  return {
    name,
    labels,
    raw: raw as number,
    timestampMs: timestampMs as number,
    base: base as number,
    offset: offset as number,
    zeroTimestampMs: zeroTimestampMs as number,
    ...(ackedValue !== null && { acked: { value: ackedValue as number, timestampMs: ackedTimestampMs as number } }),
    ...(ackedTotal !== null && { ackedTotal: ackedTotal as number }),
    ...(maybeTotal !== null && { maybeTotal: maybeTotal as number }),
  };
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isNumber = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const isCount = (v: unknown): v is number => Number.isInteger(v) && (v as number) >= 0;
