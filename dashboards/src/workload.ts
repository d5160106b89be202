/**
 * One workload (`namespace` and `job`: the CronJob, else the Job), as docs/promql.md reads it: the
 * job's own counters as increase and rate by label (summed over every pod that ran, no `pod`
 * label; a label of the job's own called `job` or `namespace` is `exported_job` /
 * `exported_namespace`), quantiles over the histogram's summed buckets, gauges as `<name>:max`,
 * and how its runs and attempts ended (docs/outcomes.md).
 */
import { DashboardBuilder, RowBuilder, type Dashboard } from '@grafana/grafana-foundation-sdk/dashboard';
import { datasourceVariable, labelValuesVariable, row, stat, table, timeseries } from './prometheus-panels.ts';

const W = 'namespace="$namespace", job="$job"';
/** The job's own series: jobmetrics' outcome series of the workload carry the same labels. */
const OWN = `${W}, __name__!~"jobmetrics_.+"`;
const QUANTILES = [0.5, 0.9, 0.99] as const;

export function workloadDashboard(): Dashboard {
  return new DashboardBuilder('jobmetrics / Workload')
    .uid('jobmetrics-workload')
    .description('One workload: its own counters and histograms summed over every pod and run, and how its runs and attempts ended (docs/dashboards.md).')
    .tags(['jobmetrics'])
    .time({ from: 'now-24h', to: 'now' })
    .refresh('1m')
    .editable()
    .withVariable(datasourceVariable())
    .withVariable(labelValuesVariable('namespace', 'namespace', 'jobmetrics_job_runs_total', { title: 'Namespace' }))
    // Workloads are what ran Jobs: any series of the namespace would also list jobmetrics' own parts,
    // whose counters per tenant keep the tenant's namespace (docs/install.md "It watches itself").
    .withVariable(labelValuesVariable('job', 'job', 'jobmetrics_job_runs_total{namespace="$namespace"}', { title: 'Workload' }))
    .withVariable(labelValuesVariable('counter', '__name__', `{${OWN}, __name__=~".+_total"}`, { title: 'Counters', all: true }))
    .withVariable(labelValuesVariable('histogram', '__name__', `{${OWN}, __name__=~".+_bucket"}`, { title: 'Histograms', all: true, regex: '/^(.+)_bucket$/' }))

    .withRow(row('Runs and attempts'))
    .withPanel(
      table('Runs by result and reason', 'Jobs of this workload that finished in the selected range, by result and the reason of their final condition.', [
        { expr: `sum by (result, reason) (increase(jobmetrics_job_runs_total{${W}}[$__range]))`, legend: 'runs' },
      ], { decimals: 0 }).span(8).height(8),
    )
    .withPanel(
      table('Attempts by result, reason and exit code', 'Main-container runs that ended in the selected range, restarts in place included.', [
        { expr: `sum by (result, reason, exit_code) (increase(jobmetrics_job_attempts_total{${W}}[$__range]))`, legend: 'attempts' },
      ], { decimals: 0 }).span(8).height(8),
    )
    .withPanel(
      stat('Sidecars\' final flushes', 'How each pod\'s sidecar ended (docs/outcomes.md): its final values delivered, undelivered at its flush deadline, or no report (killed).', [
        { expr: `sum by (result) (increase(jobmetrics_sidecar_final_flushes_total{${W}}[$__range]))`, legend: '{{result}}' },
      ], { decimals: 0 }).span(8).height(8),
    )
    .withPanel(
      stat('Sidecars\' deliveries', 'Summed from each pod\'s sidecar report: deliveries acknowledged and failed (after their retries), retries, and samples dropped at the scrape by reason.', [
        { expr: `sum by (result) (increase(jobmetrics_sidecar_deliveries_total{${W}}[$__range]))`, legend: '{{result}}' },
        { expr: `sum(increase(jobmetrics_sidecar_delivery_retries_total{${W}}[$__range]))`, legend: 'retries' },
        { expr: `sum by (reason) (increase(jobmetrics_sidecar_dropped_samples_total{${W}}[$__range]))`, legend: 'dropped: {{reason}}' },
      ], { decimals: 0 }).span(24).height(5),
    )
    .withPanel(
      stat('Mean run time by result', 'From the Job\'s start to its final condition, over the runs of the selected range.', [
        { expr: `sum by (result) (increase(jobmetrics_job_run_duration_seconds_sum{${W}}[$__range])) / sum by (result) (increase(jobmetrics_job_run_duration_seconds_count{${W}}[$__range]))`, legend: '{{result}}' },
      ], { unit: 's', decimals: 1 }).span(8).height(6),
    )
    .withPanel(
      stat('p90 attempt time by result', 'The 90th percentile of the main container\'s run time, from the histogram\'s buckets.', [
        { expr: `histogram_quantile(0.9, sum by (result, le) (increase(jobmetrics_job_attempt_duration_seconds_bucket{${W}}[$__range])))`, legend: '{{result}}' },
      ], { unit: 's', decimals: 1 }).span(8).height(6),
    )
    .withPanel(
      stat('Last successful run (CronJob)', 'The CronJob\'s status.lastSuccessfulTime; empty for a workload that is not a CronJob.', [
        { expr: `max(jobmetrics_cronjob_last_success_timestamp_seconds:max{${W}}) * 1000`, legend: 'last success' },
      ], { unit: 'dateTimeAsIso' }).span(8).height(6),
    )

    .withRow(new RowBuilder('Counters: $counter').repeat('counter'))
    .withPanel(
      table('$counter: increase in the range, by label', 'What the workload counted in the selected range, summed over its pods, one row per label set.', [
        { expr: `sum without (namespace, job) (increase(\${counter}{${W}}[$__range]))` },
      ], { decimals: 0 }).span(8).height(8),
    )
    .withPanel(
      timeseries('$counter: rate by label', 'Per second while the workload ran, summed over its pods.', [
        { expr: `sum without (namespace, job) (rate(\${counter}{${W}}[$__rate_interval]))` },
      ], { min: 0 }).span(16).height(8),
    )

    .withRow(new RowBuilder('Histograms: $histogram').repeat('histogram'))
    .withPanel(
      stat('$histogram: quantiles in the range', 'Over every observation of every pod in the selected range: the buckets are summed across pods first, so these are quantiles of all observations, not an average of per-pod quantiles.', [
        ...QUANTILES.map((q) => ({ expr: `histogram_quantile(${q}, sum by (le) (increase(\${histogram}_bucket{${W}}[$__range])))`, legend: `p${q * 100}` })),
        { expr: `sum(increase(\${histogram}_count{${W}}[$__range]))`, legend: 'observations' },
      ]).span(8).height(8),
    )
    .withPanel(
      timeseries('$histogram: quantiles while it ran', 'The same quantiles, per rate interval.', QUANTILES.map((q) => ({
        expr: `histogram_quantile(${q}, sum by (le) (rate(\${histogram}_bucket{${W}}[$__rate_interval])))`,
        legend: `p${q * 100}`,
      }))).span(16).height(8),
    )

    .withRow(row('Gauges'))
    .withPanel(
      timeseries('Gauges: highest value across pods (:max)', 'Each gauge of the job arrives as <name>:max (the highest across the workload\'s pods) and <name>:last (the newest sample).', [
        { expr: `{${OWN}, __name__=~".+:max"}`, legend: '{{__name__}}' },
      ]).span(24).height(8),
    )
    .build();
}
