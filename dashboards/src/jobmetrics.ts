/**
 * jobmetrics itself (docs/install.md "It watches itself"): the webhook's injections and skips, the
 * pods that ran without the sidecar, the sidecars' deliveries as the recorder reads them from each
 * pod's end, the gateway and the recorder delivering to the aggregator, and the aggregator's
 * (vmagent's) own health. jobmetrics' parts are scraped with `namespace` = where jobmetrics runs
 * and `job` = the part; the sidecars' and the recorder's per-workload series carry the workload's
 * `namespace` and `job`.
 */
import { DashboardBuilder, type Dashboard } from '@grafana/grafana-foundation-sdk/dashboard';
import { datasourceVariable, labelValuesVariable, row, stat, table, timeseries } from './prometheus-panels.ts';

/** jobmetrics' own namespace (the `namespace` of its parts' scraped series). */
const J = 'namespace="$jobmetrics_namespace"';
const rate = (metric: string, by: string, extra = ''): string => `sum by (${by}) (rate(${metric}{${J}${extra}}[$__rate_interval]))`;

export function jobmetricsDashboard(): Dashboard {
  return new DashboardBuilder('jobmetrics / jobmetrics itself')
    .uid('jobmetrics-self')
    .description('The webhook, the sidecars\' deliveries, the gateway, the recorder and the aggregator (docs/dashboards.md).')
    .tags(['jobmetrics'])
    .time({ from: 'now-6h', to: 'now' })
    .refresh('1m')
    .editable()
    .withVariable(datasourceVariable())
    .withVariable(labelValuesVariable('jobmetrics_namespace', 'namespace', 'up{job=~"jobmetrics-.+"}', { title: 'jobmetrics namespace' }))

    .withRow(row('Health'))
    .withPanel(
      table('Replicas up, by part', 'Replicas of each part that answered their last scrape (webhook, gateway, recorder, aggregator or its shards, Prometheus), of those found.', [
        { expr: `sum by (job) (up{${J}, job=~"jobmetrics-.+"})`, legend: 'up' },
        { expr: `count by (job) (up{${J}, job=~"jobmetrics-.+"})`, legend: 'replicas' },
      ], { decimals: 0 }).span(12).height(8),
    )
    .withPanel(
      timeseries('Replicas up over time', 'A dip is a replica that did not answer a scrape; the webhook\'s failurePolicy is Ignore, so pods created while no webhook answers run unmeasured.', [
        { expr: `sum by (job) (up{${J}, job=~"jobmetrics-.+"})`, legend: '{{job}}' },
      ], { min: 0 }).span(12).height(8),
    )

    .withRow(row('Injection'))
    .withPanel(
      table('Pods injected and skipped', 'AdmissionReviews the webhook answered in the selected range: pods injected (by mode and where the workload name came from), and pods skipped by reason.', [
        { expr: `sum by (mode, workload_source) (increase(jobmetrics_webhook_injections_total{${J}}[$__range]))`, legend: 'injected' },
      ], { decimals: 0 }).span(8).height(8),
    )
    .withPanel(
      table('Skips by reason', 'Pods the webhook did not inject, by reason (opted-out, namespace-not-enabled, invalid-port, …; docs/troubleshooting.md).', [
        { expr: `sum by (reason) (increase(jobmetrics_webhook_skips_total{${J}}[$__range])) > 0`, legend: 'skipped' },
      ], { decimals: 0 }).span(8).height(8),
    )
    .withPanel(
      table('Job pods that ran without the sidecar', 'Seen by the recorder in opted-in namespaces (docs/outcomes.md): opted-out, skipped by the webhook, or webhook-unreachable (no status at all).', [
        { expr: 'sum by (namespace, job, reason) (increase(jobmetrics_pods_unmeasured_total[$__range])) > 0', legend: 'pods' },
      ], { decimals: 0 }).span(8).height(8),
    )
    .withPanel(
      timeseries('Admission reviews by outcome', 'Per second: injected, skipped, ignored, and the errors (bad_request, too_large, overloaded, error).', [
        { expr: rate('jobmetrics_webhook_requests_total', 'outcome'), legend: '{{outcome}}' },
      ], { min: 0, unit: 'reqps' }).span(12).height(8),
    )
    .withPanel(
      timeseries('Admission review latency', 'From a review\'s arrival to its answer, 99th percentile over the webhook\'s replicas; the API server gives up after the webhook\'s timeout.', [
        { expr: `histogram_quantile(0.99, sum by (le) (rate(jobmetrics_webhook_request_duration_seconds_bucket{${J}}[$__rate_interval])))`, legend: 'p99' },
      ], { min: 0, unit: 's' }).span(12).height(8),
    )

    .withRow(row('Deliveries'))
    .withPanel(
      table('Sidecars\' final flushes by workload', 'How each pod\'s sidecar ended, per workload, in the selected range (docs/outcomes.md): delivered, undelivered (it gave up at its flush deadline) or no-report (killed); and the series the undelivered flushes held.', [
        { expr: 'sum by (namespace, job, result) (increase(jobmetrics_sidecar_final_flushes_total[$__range]))', legend: 'pods' },
      ], { decimals: 0 }).span(12).height(8),
    )
    .withPanel(
      table('Series not delivered by final flushes', 'Series the undelivered final flushes held, per workload; the values are in each pod\'s termination message (README "One pod\'s numbers").', [
        { expr: 'sum by (namespace, job) (increase(jobmetrics_sidecar_undelivered_series_total[$__range])) > 0', legend: 'series' },
      ], { decimals: 0 }).span(12).height(8),
    )
    .withPanel(
      table('Sidecars\' deliveries by workload', 'Summed from each pod\'s sidecar report once the pod is over (docs/outcomes.md), in the selected range: deliveries the gateway acknowledged, deliveries that failed after their retries, retries, and samples dropped at the scrape.', [
        { expr: 'sum by (namespace, job) (increase(jobmetrics_sidecar_deliveries_total{result="ok"}[$__range]))', legend: 'delivered' },
        { expr: 'sum by (namespace, job) (increase(jobmetrics_sidecar_deliveries_total{result="failed"}[$__range]))', legend: 'failed' },
        { expr: 'sum by (namespace, job) (increase(jobmetrics_sidecar_delivery_retries_total[$__range]))', legend: 'retries' },
        { expr: 'sum by (namespace, job) (increase(jobmetrics_sidecar_dropped_samples_total[$__range]))', legend: 'samples dropped' },
      ], { decimals: 0 }).span(12).height(8),
    )
    .withPanel(
      table('Samples the sidecars dropped, by reason', 'Per workload and reason (duplicate, invalid-value, invalid-labels, over-limit; docs/semantics.md "What the sidecar drops"); and pods whose sidecar left no delivery counts (restarted, or an older sidecar).', [
        { expr: 'sum by (namespace, job, reason) (increase(jobmetrics_sidecar_dropped_samples_total[$__range])) > 0', legend: 'samples dropped' },
        { expr: 'sum by (namespace, job, reason) (increase(jobmetrics_sidecar_delivery_counts_unknown_total[$__range])) > 0', legend: 'pods without counts' },
      ], { decimals: 0 }).span(12).height(8),
    )
    .withPanel(
      timeseries('Gateway: writes by status', 'Remote-write requests from the sidecars and the recorder, per second, by the HTTP status the gateway answered.', [
        { expr: rate('jobmetrics_gateway_write_requests_total', 'code'), legend: '{{code}}' },
      ], { min: 0, unit: 'reqps' }).span(8).height(8),
    )
    .withPanel(
      timeseries('Gateway: forwards failed, writes refused, samples dropped', 'Per second: forwards the aggregator did not take (by part), writes refused for their writer (by reason), samples dropped by a namespace\'s limits (by namespace and reason; docs/gateway.md).', [
        { expr: rate('jobmetrics_gateway_forward_failures_total', 'part'), legend: 'forward failed: {{part}}' },
        { expr: rate('jobmetrics_gateway_writer_refusals_total', 'reason'), legend: 'refused: {{reason}}' },
        { expr: 'sum by (namespace, reason) (rate(jobmetrics_gateway_limit_dropped_samples_total{job="jobmetrics-gateway"}[$__rate_interval]))', legend: 'dropped: {{namespace}} {{reason}}' },
      ], { min: 0 }).span(8).height(8),
    )
    .withPanel(
      timeseries('Recorder: outcome events', 'Per second, by state: queued, delivered, too_old (past the delivery window), expired (given up); and failed deliveries.', [
        { expr: rate('jobmetrics_recorder_events_total', 'state'), legend: '{{state}}' },
        { expr: `sum(rate(jobmetrics_recorder_delivery_failures_total{${J}}[$__rate_interval]))`, legend: 'delivery failures' },
      ], { min: 0 }).span(8).height(8),
    )

    .withRow(row('Aggregator (vmagent)'))
    .withPanel(
      timeseries('Samples in and out', 'Per second: samples the aggregator received, the stream aggregation\'s outputs, and samples its rules ignored.', [
        { expr: rate('vmagent_rows_inserted_total', 'pod'), legend: 'received {{pod}}' },
        { expr: rate('vm_streamaggr_output_samples_total', 'pod'), legend: 'aggregated {{pod}}' },
        { expr: rate('vm_streamaggr_ignored_samples_total', 'pod, reason'), legend: 'ignored {{pod}} {{reason}}' },
      ], { min: 0 }).span(8).height(8),
    )
    .withPanel(
      timeseries('Remote write to the store', 'Per second: requests by status code, retries and blocks dropped (docs/alerts.md "JobmetricsAggregatorDown").', [
        { expr: rate('vmagent_remotewrite_requests_total', 'pod, status_code'), legend: '{{pod}} {{status_code}}' },
        { expr: rate('vmagent_remotewrite_retries_count_total', 'pod'), legend: 'retries {{pod}}' },
        { expr: rate('vmagent_remotewrite_packets_dropped_total', 'pod'), legend: 'dropped {{pod}}' },
      ], { min: 0 }).span(8).height(8),
    )
    .withPanel(
      stat('Pending for the store', 'Bytes the aggregator has queued for the store; it grows while the store does not take them.', [
        { expr: `sum(vmagent_remotewrite_pending_data_bytes{${J}})`, legend: 'pending' },
      ], { unit: 'bytes' }).span(4).height(8),
    )
    .withPanel(
      stat('Hourly series limit used', 'The share of the aggregator\'s -remoteWrite.maxHourlySeries in use; past it, new series are dropped.', [
        { expr: `max(vmagent_hourly_series_limit_current_series{${J}} / vmagent_hourly_series_limit_max_series{${J}})`, legend: 'used' },
      ], { unit: 'percentunit', decimals: 1 }).span(4).height(8),
    )
    .build();
}
