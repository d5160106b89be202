/**
 * Which scraped samples are summed across pods (counter-like) and which are gauges, decided from
 * the family type alone (docs/semantics.md). Remote write v1 carries no type, so the
 * sidecar tells the aggregator through a label (see series-store.ts).
 */
import type { MetricFamily, Sample } from '../shared/exposition/types.ts';

export type SeriesKind = 'counter' | 'gauge';

/**
 * `drop` is for samples that must not be aggregated at all: OpenMetrics `_created` timestamps
 * (summing creation times across pods means nothing), and values the aggregator cannot use.
 */
export function sampleKind(family: MetricFamily, sample: Sample): SeriesKind | 'drop' {
  const name = sample.name;
  if (name.endsWith('_created') && name !== family.name && family.type !== 'gauge') return 'drop';
  switch (family.type) {
    case 'counter':
    case 'histogram':
      // counter: `_total` (or the bare name in 0.0.4); histogram: `_bucket`, `_sum`, `_count`.
      return 'counter';
    case 'summary':
      // `_sum` and `_count` add up across pods; quantiles do not, so they are gauges.
      return name === family.name ? 'gauge' : 'counter';
    case 'untyped':
    case 'unknown':
      // Without a TYPE line, the naming convention is all there is: `_total` marks a counter.
      return name.endsWith('_total') ? 'counter' : 'gauge';
    case 'gauge':
    case 'gaugehistogram':
    case 'info':
    case 'stateset':
      return 'gauge';
  }
}
