/**
 * One pod's numbers, without a series per pod (docs/sidecar.md "One pod's numbers"). The aggregator drops
 * the `pod` label, so what a single pod counted is gone from Prometheus; on its way out the
 * sidecar leaves it in two places Kubernetes already keeps per pod:
 *
 * - one log line, `"msg":"final values"`, holding every series as `name{labels}` → value, at most
 *   LOG_VALUES_MAX_BYTES of JSON, with `truncated: {kept, total}` when cut;
 * - its container's termination message: a plain-text summary of at most
 *   TERMINATION_MESSAGE_MAX_BYTES, the size the kubelet keeps.
 *
 * Both list the most significant series first, so a cut loses the least: counters by value, the
 * highest first (what the pod did); then gauges; then histogram buckets (many, and their total
 * is the `_count` listed among the counters). Gauges and buckets go by name and labels, buckets
 * of one histogram in `le` order; equal counters by name and labels too, so the order is stable.
 * The sidecar's own labels (`namespace`, `job`, the kind) are left out: they are the same on
 * every series and the log line names them once.
 *
 * Pure functions; sidecar.ts logs the line and writes the file. The work is bounded: the store
 * holds up to ~6 000 series (shared/sidecar-memory.ts), whose labels may be long, so they are
 * sorted without building any text, and a series' text is built only while the output still has
 * room for it.
 */
import { printValue } from '../shared/exposition/print.ts';
import { formatReportHead, type DropReason } from '../shared/final-report-head.ts';
import { KIND_LABEL, type FinalValue } from './series-store.ts';

/** The log line's `msg`: fixed, so a log pipeline can select the line by it. */
export const FINAL_VALUES_MSG = 'final values';

/**
 * The most bytes of JSON the log line's `values` object takes. A container's output line longer
 * than 16 KiB reaches the node's log file in pieces: containerd's CRI plugin splits it
 * (`max_container_log_line_size`, default 16384) and so does Docker's json-file driver, marking
 * all but the last as partial. `kubectl logs` joins them again, but a log pipeline that does not
 * merge partial lines sees broken JSON, and others cut lines at their own limits (Fluent Bit's
 * tail buffer, 32 KiB by default; Loki's `max_line_size`, 256 KB). 15 KiB leaves 1 KiB for the
 * line's other fields (time, names of at most 253 characters, counts), so the whole line stays
 * one piece on every runtime's default: about 200 series of a typical length.
 */
export const LOG_VALUES_MAX_BYTES = 15 * 1024;

/**
 * The most bytes of a termination message: the kubelet reads no more of the file (Container
 * `terminationMessagePath` in
 * https://kubernetes.io/docs/reference/kubernetes-api/workload-resources/pod-v1/: "truncated by
 * the node if greater than 4096 bytes. The total message length across all containers will be
 * limited to 12kb"). The kubelet's status manager divides those 12 KiB by the pod's containers,
 * init containers included, and keeps the start of each message: all 4096 bytes in a pod of up to
 * 3 containers, 3 KiB in a pod of 4. The most significant lines come first for that reason too.
 */
export const TERMINATION_MESSAGE_MAX_BYTES = 4096;

/**
 * The most bytes of one series' `name{labels}` in the termination message: a series with a huge
 * label is cut (with "…") so that it cannot take the whole message; its value is still shown.
 */
export const MESSAGE_SERIES_MAX_BYTES = 512;

/** What the report says about the flush it ends and the sidecar's life (a SidecarSummary has these fields). */
export interface ReportSummary {
  readonly trigger: string;
  readonly attempt: number;
  readonly finalDelivered: boolean;
  readonly finalUndelivered: number;
  /** Deliveries acknowledged, and failed after their retries. */
  readonly deliveriesOk: number;
  readonly deliveryFailures: number;
  readonly retries: number;
  readonly droppedByReason: Readonly<Record<DropReason, number>>;
}

/** The pod the values belong to (the log line names it: a pipeline may not add these labels). */
export interface ReportIdentity {
  readonly namespace: string;
  readonly job: string;
  readonly pod: string;
}

export interface FinalReport {
  /** The fields of the `final values` log line. */
  readonly fields: Record<string, unknown>;
  /** The termination message, at most `maxMessageBytes` bytes of UTF-8. */
  readonly message: string;
}

export interface ReportLimits {
  readonly maxLogValuesBytes?: number;
  readonly maxMessageBytes?: number;
}

/** Both outputs, from the store's final values (SeriesStore.finalValues()). */
export function finalReport(values: readonly FinalValue[], summary: ReportSummary, identity: ReportIdentity, limits: ReportLimits = {}): FinalReport {
  const ranked = rankFinalValues(values);
  return {
    fields: finalValuesFields(ranked, summary, identity, limits.maxLogValuesBytes ?? LOG_VALUES_MAX_BYTES),
    message: terminationMessage(ranked, summary, limits.maxMessageBytes ?? TERMINATION_MESSAGE_MAX_BYTES),
  };
}

/** The values, most significant first (see the module's comment); a sorted copy. */
export function rankFinalValues(values: readonly FinalValue[]): FinalValue[] {
  // Each series' tier once, not once per comparison.
  const keyed = values.map((v) => ({ v, tier: tier(v) }));
  keyed.sort((a, b) => {
    if (a.tier !== b.tier) return a.tier - b.tier;
    if (a.tier === 0 && a.v.value !== b.v.value) return b.v.value - a.v.value;
    const byName = compareText(a.v.name, b.v.name);
    if (byName !== 0) return byName;
    return compareLabels(a.v.labels, b.v.labels, a.tier === 2);
  });
  return keyed.map((k) => k.v);
}

/**
 * The `final values` log line's fields: who and which flush, and `values` mapping each series'
 * `name{labels}` to its value (a JSON number; `"NaN"`, `"+Inf"` or `"-Inf"` as text, as JSON has
 * no such numbers), in the order of `ranked`, until `maxBytes` of JSON; then `truncated`.
 */
export function finalValuesFields(ranked: readonly FinalValue[], summary: ReportSummary, identity: ReportIdentity, maxBytes = LOG_VALUES_MAX_BYTES): Record<string, unknown> {
  const values: Record<string, number | string> = {};
  let bytes = 2; // {}
  let kept = 0;
  for (const v of ranked) {
    const key = seriesText(v);
    const value = Number.isFinite(v.value) ? v.value : printValue(v.value);
    // `"key":value`, and a comma before every entry but the first.
    const entry = utf8Bytes(JSON.stringify(key)) + 1 + utf8Bytes(JSON.stringify(value)) + (kept > 0 ? 1 : 0);
    if (bytes + entry > maxBytes) break;
    values[key] = value;
    bytes += entry;
    kept++;
  }
  return {
    namespace: identity.namespace,
    job: identity.job,
    pod: identity.pod,
    trigger: summary.trigger,
    attempt: summary.attempt,
    delivered: summary.finalDelivered,
    series: ranked.length,
    values,
    ...(kept < ranked.length ? { truncated: { kept, total: ranked.length } } : {}),
  };
}

/**
 * The termination message: a first line with the flush's trigger, attempt, delivery and series
 * count and the sidecar's delivery counts (shared/final-report-head.ts, which the recorder reads),
 * then one `name{labels} value` line per series in the order of `ranked` while they fit, then
 * `… N more series` for the rest; at most `maxBytes` bytes of UTF-8, lines whole.
 */
export function terminationMessage(ranked: readonly FinalValue[], summary: ReportSummary, maxBytes = TERMINATION_MESSAGE_MAX_BYTES): string {
  const total = ranked.length;
  const head = formatReportHead({
    trigger: summary.trigger,
    attempt: summary.attempt,
    delivered: summary.finalDelivered,
    undelivered: summary.finalUndelivered,
    series: total,
    counts: { ok: summary.deliveriesOk, failed: summary.deliveryFailures, retries: summary.retries, dropped: summary.droppedByReason },
  });
  const lines = [cutUtf8(head, maxBytes)];
  let bytes = utf8Bytes(lines[0]!);
  // Room is kept for the line that counts what does not fit, so stopping never needs it back.
  const more = (n: number): number => (n === 0 ? 0 : 1 + utf8Bytes(moreLine(n)));
  let kept = 0;
  for (const v of ranked) {
    const line = `${cutUtf8(seriesText(v, MESSAGE_SERIES_MAX_BYTES), MESSAGE_SERIES_MAX_BYTES, '…')} ${printValue(v.value)}`;
    const size = 1 + utf8Bytes(line);
    if (bytes + size + more(total - kept - 1) > maxBytes) break;
    lines.push(line);
    bytes += size;
    kept++;
  }
  if (kept < total && bytes + more(total - kept) <= maxBytes) lines.push(moreLine(total - kept));
  return lines.join('\n');
}

function moreLine(n: number): string {
  return `… ${n} more series`;
}

/**
 * `name{label="value",…}` without the sidecar's own labels (the form of the sidecar's other log
 * lines), or just `name` without labels. With `maxChars`, building stops soon after that many
 * characters: the caller cuts it anyway, and a label may be very long.
 */
export function seriesText(v: FinalValue, maxChars = Infinity): string {
  let text = v.name;
  let first = true;
  for (const [n, value] of v.labels) {
    if (n === 'namespace' || n === 'job' || n === KIND_LABEL) continue;
    text += `${first ? '{' : ','}${n}=${JSON.stringify(value.length > maxChars ? value.slice(0, maxChars) : value)}`;
    first = false;
    if (text.length > maxChars) return text;
  }
  return first ? text : text + '}';
}

/** The bytes of `s` in UTF-8 (a lone surrogate is written as U+FFFD, 3 bytes). */
export function utf8Bytes(s: string): number {
  return Buffer.byteLength(s, 'utf8');
}

/**
 * The longest start of `s` of at most `maxBytes` bytes of UTF-8, cut between characters (never
 * inside a surrogate pair), with `ellipsis` appended (within the bound) when it was cut.
 */
export function cutUtf8(s: string, maxBytes: number, ellipsis = ''): string {
  if (utf8Bytes(s) <= maxBytes) return s;
  const room = maxBytes - utf8Bytes(ellipsis);
  if (room < 0) return '';
  let bytes = 0;
  let i = 0;
  while (i < s.length) {
    const c = s.codePointAt(i)!;
    const width = c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
    if (bytes + width > room) break;
    bytes += width;
    i += c >= 0x10000 ? 2 : 1;
  }
  return s.slice(0, i) + ellipsis;
}

/** 0: counters but buckets; 1: gauges; 2: histogram buckets. */
function tier(v: FinalValue): number {
  if (v.kind === 'gauge') return 1;
  return leOf(v) !== undefined ? 2 : 0;
}

/** A histogram bucket's upper bound (`_bucket` with an `le` label), else undefined. */
function leOf(v: FinalValue): number | undefined {
  if (!v.name.endsWith('_bucket')) return undefined;
  const le = v.labels.find(([n]) => n === 'le')?.[1];
  if (le === undefined) return undefined;
  if (le === '+Inf' || le === 'Inf') return Infinity;
  const n = Number(le);
  return Number.isNaN(n) ? undefined : n;
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Label sets in order, pair by pair (both sorted by name); with `le` numeric for buckets. */
function compareLabels(a: ReadonlyArray<readonly [string, string]>, b: ReadonlyArray<readonly [string, string]>, buckets: boolean): number {
  let le = 0;
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const [an, av] = a[i]!;
    const [bn, bv] = b[i]!;
    const byName = compareText(an, bn);
    if (byName !== 0) return byName;
    if (buckets && an === 'le') {
      // The bound decides only between buckets whose other labels are the same.
      if (le === 0) le = compareNumbers(leNumber(av), leNumber(bv)) || compareText(av, bv);
      continue;
    }
    const byValue = compareText(av, bv);
    if (byValue !== 0) return byValue;
  }
  return a.length - b.length || le;
}

function leNumber(le: string): number {
  return le === '+Inf' || le === 'Inf' ? Infinity : Number(le);
}

function compareNumbers(a: number, b: number): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
