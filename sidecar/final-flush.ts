/**
 * The final delivery's policy and its account (README "What is guaranteed, and what can be lost"; docs/semantics.md "The final flush against a failing aggregator"): when the
 * main container has exited, the last values go out within the flush deadline in a few spaced
 * attempts that honour the aggregator's Retry-After — a thousand pods ending together must not
 * become a flood against a rate-limiting aggregator — and what could not be delivered is logged
 * by name, value and cause. Pure functions; sidecar.ts does the delivery.
 */
import type { DeliverOptions, DeliveryOutcome } from '../shared/remote-write.ts';
import { KIND_LABEL, type PushPlan } from './series-store.ts';

/** Most attempts of the final delivery. */
export const FINAL_FLUSH_MAX_ATTEMPTS = 5;
/** Most undelivered series listed by name and value in the log; the rest are counted. */
export const UNDELIVERED_LISTED = 20;

/**
 * The retry settings of a flush with `budgetMs` to go: at most FINAL_FLUSH_MAX_ATTEMPTS
 * attempts, at least an eighth of the budget (≥ 100 ms) apart, the backoff capped at a quarter of
 * it: the attempts are spread over the budget — the last between half and seven eighths of it, so
 * an aggregator back within the budget is still reached — never bunched at its start or end.
 * A Retry-After is waited for when it ends before the deadline; otherwise the flush stops there.
 */
export function finalFlushRetry(budgetMs: number): Required<Pick<DeliverOptions, 'maxAttempts' | 'baseBackoffMs' | 'maxBackoffMs' | 'minDelayMs'>> {
  const base = Math.max(100, Math.round(budgetMs / 8));
  return { maxAttempts: FINAL_FLUSH_MAX_ATTEMPTS, baseBackoffMs: base, maxBackoffMs: Math.max(base, Math.round(budgetMs / 4)), minDelayMs: base };
}

/** Why the final delivery failed, in words that name the real cause. */
export function undeliveredCause(outcome: DeliveryOutcome | undefined): string {
  if (outcome === undefined) return 'the flush deadline passed before the final delivery could start';
  if (outcome.ok) return 'delivered';
  const tries = `${outcome.attempts} attempt${outcome.attempts === 1 ? '' : 's'}`;
  const { status, error } = outcome;
  if (status !== undefined && status >= 400 && status < 500 && status !== 429) {
    return `the aggregator rejected the request (${error.message}); the same request cannot succeed later, so it was not retried`;
  }
  if (outcome.retryAfterMs !== undefined) {
    return `the aggregator asked to retry after ${Math.round(outcome.retryAfterMs / 1000)} s (HTTP ${status ?? '?'}), past the flush deadline; after ${tries}: ${error.message}`;
  }
  if (status !== undefined) return `the aggregator failed every attempt before the deadline (${tries}; last: ${error.message})`;
  if (/deadline passed before attempt/.test(error.message)) return `the flush deadline passed (${tries}): ${error.message}`;
  if (/timed out/.test(error.message)) return `no answer from the aggregator before the flush deadline (${tries}): ${error.message}`;
  return `the aggregator could not be reached (${tries}): ${error.message}`;
}

/**
 * The undelivered series as `name{labels} value` (the sidecar's own labels left out: the log
 * line carries them once), the first UNDELIVERED_LISTED of them, and how many more there are.
 */
export function undeliveredValues(plan: PushPlan, limit = UNDELIVERED_LISTED): { readonly values: string[]; readonly more: number } {
  const own = new Set(['__name__', 'pod', 'namespace', 'job', KIND_LABEL]);
  const values = plan.series.slice(0, limit).map((s) => {
    const name = s.labels.find(([n]) => n === '__name__')?.[1] ?? '';
    const labels = s.labels.filter(([n]) => !own.has(n)).map(([n, v]) => `${n}=${JSON.stringify(v)}`);
    const last = s.samples[s.samples.length - 1];
    return `${name}{${labels.join(',')}} ${last === undefined ? '' : String(last.value)}`;
  });
  return { values, more: Math.max(0, plan.series.length - limit) };
}
