/**
 * The first line of the sidecar's termination message (docs/sidecar.md "One pod's numbers"): how its last
 * flush ended and what it did over its life. The sidecar writes it (sidecar/final-report.ts); the
 * outcome recorder reads it once the pod is over and counts it per workload (recorder/outcomes.ts,
 * docs/outcomes.md). Both sides are here, so they cannot drift apart; in shared/ because the
 * recorder's image holds no sidecar code.
 *
 *   jobmetrics final values: trigger=main-exited attempt=1 delivered=true series=10 deliveries_ok=12 deliveries_failed=0 retries=0
 *   jobmetrics final values: trigger=signal attempt=2 delivered=false undelivered=40 series=40 dropped=9 deliveries_ok=3 deliveries_failed=2 retries=14 dropped_by=invalid-value:3,over-limit:6
 *
 * A fixed prefix, then `key=value` fields separated by spaces. The line comes first and stays short
 * (every value a number or a fixed word: under 400 bytes even with 15-digit counts): the kubelet
 * keeps only the start of a message (4096 bytes, less in a pod of more than 3 containers). The fields an
 * older recorder reads stay where they were: `delivered=`, right after it `undelivered=`.
 *
 * The delivery counts (`deliveries_ok`, `deliveries_failed`, `retries`, `dropped_by`) are newer
 * than the rest: a report without them is from an older sidecar, and its counts are unknown, never
 * zero (`counts` undefined).
 */

/** Every report's first line starts with this. */
export const REPORT_PREFIX = 'jobmetrics final values: ';

/**
 * Why the sidecar drops a scraped sample (sidecar/series-store.ts says when; docs/semantics.md,
 * "What the sidecar drops"). The recorder turns these into label values, so it accepts no other.
 */
export const DROP_REASONS = ['invalid-value', 'duplicate', 'invalid-labels', 'over-limit'] as const;
export type DropReason = (typeof DROP_REASONS)[number];

/** What the sidecar did over its life (the last run of its container: a restart starts afresh). */
export interface DeliveryCounts {
  /** Deliveries (one POST of the store's values with its retries) the gateway acknowledged. */
  readonly ok: number;
  /** Deliveries that failed after their retries (a later one may still carry the values). */
  readonly failed: number;
  /** Attempts repeated after a failed one, across all deliveries. */
  readonly retries: number;
  /** Scraped samples dropped, per reason (every scrape counts); reasons with none are left out. */
  readonly dropped: Readonly<Partial<Record<DropReason, number>>>;
}

export interface ReportHead {
  /** What ended the flush: main-exited, main-never-seen, no-shared-pid-namespace, signal. */
  readonly trigger: string;
  /** Which run of the main container the flush ended. */
  readonly attempt: number;
  /** Whether the final values reached the gateway before the flush deadline. */
  readonly delivered: boolean;
  /** Series whose final value was not delivered (0 when delivered). */
  readonly undelivered: number;
  readonly series: number;
  /** Undefined: a report of an older sidecar, which does not say. */
  readonly counts?: DeliveryCounts;
}

/** The first line, as the sidecar writes it. */
export function formatReportHead(head: ReportHead & { readonly counts: DeliveryCounts }): string {
  const { counts } = head;
  const drops = DROP_REASONS.flatMap((r) => ((counts.dropped[r] ?? 0) > 0 ? [[r, counts.dropped[r] ?? 0] as const] : []));
  const dropped = drops.reduce((n, [, c]) => n + c, 0);
  let line = `${REPORT_PREFIX}trigger=${head.trigger} attempt=${head.attempt} delivered=${head.delivered}`;
  if (!head.delivered) line += ` undelivered=${head.undelivered}`;
  line += ` series=${head.series}`;
  if (dropped > 0) line += ` dropped=${dropped}`;
  line += ` deliveries_ok=${counts.ok} deliveries_failed=${counts.failed} retries=${counts.retries}`;
  if (drops.length > 0) line += ` dropped_by=${drops.map(([r, c]) => `${r}:${c}`).join(',')}`;
  return line;
}

/** A count as the sidecar writes it: a non-negative integer, at most 15 digits. */
const count = (s: string | undefined): number | undefined => (s !== undefined && /^\d{1,15}$/.test(s) ? Number(s) : undefined);

/**
 * The first line of a termination message, read back; undefined when the message is no report
 * (none at all, or another program's). Fields it does not know are ignored (a newer sidecar may
 * add some). The delivery counts are there only when every one of them is well formed: a report
 * that cannot be read whole says nothing about them rather than something wrong.
 */
export function parseReportHead(message: string | undefined): ReportHead | undefined {
  if (message === undefined || !message.startsWith(REPORT_PREFIX)) return undefined;
  const end = message.indexOf('\n');
  const fields = new Map<string, string>();
  for (const field of message.slice(REPORT_PREFIX.length, end < 0 ? undefined : end).split(' ')) {
    const eq = field.indexOf('=');
    if (eq > 0 && !fields.has(field.slice(0, eq))) fields.set(field.slice(0, eq), field.slice(eq + 1));
  }
  const delivered = fields.get('delivered');
  if (delivered !== 'true' && delivered !== 'false') return undefined;
  const head = {
    trigger: fields.get('trigger') ?? '',
    attempt: count(fields.get('attempt')) ?? 0,
    delivered: delivered === 'true',
    undelivered: delivered === 'true' ? 0 : (count(fields.get('undelivered')) ?? 0),
    series: count(fields.get('series')) ?? 0,
  };
  const counts = deliveryCounts(fields);
  return counts === undefined ? head : { ...head, counts };
}

function deliveryCounts(fields: ReadonlyMap<string, string>): DeliveryCounts | undefined {
  const ok = count(fields.get('deliveries_ok'));
  const failed = count(fields.get('deliveries_failed'));
  const retries = count(fields.get('retries'));
  if (ok === undefined || failed === undefined || retries === undefined) return undefined;
  const dropped: Partial<Record<DropReason, number>> = {};
  const by = fields.get('dropped_by');
  for (const entry of by === undefined ? [] : by.split(',')) {
    const colon = entry.lastIndexOf(':');
    const reason = DROP_REASONS.find((r) => r === entry.slice(0, colon));
    const n = count(entry.slice(colon + 1));
    if (colon < 0 || reason === undefined || n === undefined || reason in dropped) return undefined;
    if (n > 0) dropped[reason] = n;
  }
  return { ok, failed, retries, dropped };
}
