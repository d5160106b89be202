/**
 * Content negotiation for scrapes, done the way Prometheus 2.x does it so that a job answers the
 * sidecar exactly as it would answer Prometheus.
 */
import type { ExpositionFormat } from './types.ts';

/**
 * The `Accept` header of Prometheus 2.x with its default `scrape_protocols`
 * (OpenMetricsText1.0.0, OpenMetricsText0.0.1, PrometheusText0.0.4): scrape/scrape.go
 * `acceptHeader()` gives each protocol a weight `q=0.<n>` counting down from
 * `len(ScrapeProtocolsHeaders)+1` = 5, then appends `*\/*` with the next weight.
 * OpenMetrics 0.0.1 is parsed as 1.0.0: the text grammar did not change.
 */
export const ACCEPT_HEADER =
  'application/openmetrics-text;version=1.0.0;q=0.5,' +
  'application/openmetrics-text;version=0.0.1;q=0.4,' +
  'text/plain;version=0.0.4;q=0.3,' +
  '*/*;q=0.2';

/**
 * Which grammar to parse a response with, from its `Content-Type`. As Prometheus 2.x
 * (model/textparse `New`): the media type `application/openmetrics-text` (case-insensitive,
 * parameters ignored) means OpenMetrics; anything else, a missing or malformed header included,
 * means the text format 0.0.4.
 */
export function formatFromContentType(contentType: string | undefined): ExpositionFormat {
  if (typeof contentType !== 'string') return 'prometheus';
  const semicolon = contentType.indexOf(';');
  const mediaType = (semicolon === -1 ? contentType : contentType.slice(0, semicolon)).trim().toLowerCase();
  return mediaType === 'application/openmetrics-text' ? 'openmetrics' : 'prometheus';
}
