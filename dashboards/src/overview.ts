/**
 * Overview: how every workload's runs end (docs/outcomes.md), how long the successful ones take,
 * which fail and why, and the completion SLO's burn (docs/alerts.md). Every workload is a
 * `namespace` and `job` (the CronJob, else the Job); the `namespace` variable narrows the view.
 */
import { DashboardBuilder, type Dashboard } from '@grafana/grafana-foundation-sdk/dashboard';
import { datasourceVariable, labelValuesVariable, row, stat, table, timeseries } from './prometheus-panels.ts';

const NS = 'namespace=~"$namespace"';
const RUNS = 'jobmetrics_job_runs_total';
/** Finished runs per workload over the range, of one result or (undefined) all. */
const runs = (result?: string): string =>
  `sum by (namespace, job) (increase(${RUNS}{${NS}${result === undefined ? '' : `, result="${result}"`}}[$__range]))`;
/**
 * The failed share of each workload's runs over a window (the SLI recording rule), 0 for a
 * workload that ran without failing: the rule has no series for it (no failed runs to divide).
 */
const failureRatio = (window: string): string =>
  `(workload:jobmetrics_job_run_failure_ratio:rate${window}{${NS}} or sum by (namespace, job) (workload_result:jobmetrics_job_runs:rate${window}{${NS}}) * 0)`;
const succeededDuration = (part: string): string => `jobmetrics_job_run_duration_seconds_${part}{${NS}, result="succeeded"}`;

export function overviewDashboard(): Dashboard {
  return new DashboardBuilder('jobmetrics / Overview')
    .uid('jobmetrics-overview')
    .description('Job outcomes of every workload: completion rate, run time of successful runs, failures and their causes, and the completion SLO (docs/dashboards.md).')
    .tags(['jobmetrics'])
    .time({ from: 'now-24h', to: 'now' })
    .refresh('1m')
    .editable()
    .withVariable(datasourceVariable())
    .withVariable(labelValuesVariable('namespace', 'namespace', RUNS, { title: 'Namespace', all: true }))

    .withRow(row('Completion'))
    .withPanel(
      stat('Runs finished', 'Jobs that finished (Complete or Failed) in the selected range.', [
        { expr: `sum(increase(${RUNS}{${NS}}[$__range])) or vector(0)`, legend: 'runs' },
      ], { decimals: 0 }).span(4).height(6),
    )
    .withPanel(
      stat('Runs failed', 'Jobs the Job controller gave up on (BackoffLimitExceeded, DeadlineExceeded, …) in the selected range.', [
        { expr: `sum(increase(${RUNS}{${NS}, result="failed"}[$__range])) or vector(0)`, legend: 'failed' },
      ], { decimals: 0 }).span(4).height(6),
    )
    .withPanel(
      stat('SLO alerts firing', 'JobmetricsCompletionSLOFastBurn and …SlowBurn alerts firing now (docs/alerts.md).', [
        { expr: `count(ALERTS{alertname=~"JobmetricsCompletionSLO.+", alertstate="firing", ${NS}}) or vector(0)`, legend: 'alerts' },
      ], { decimals: 0 }).span(4).height(6),
    )
    .withPanel(
      table('Completion rate per workload', 'The share of each workload\'s finished runs that succeeded in the selected range (0 % for a workload whose runs all failed), and how many runs finished.', [
        // A workload without a succeeded run has no succeeded series: its rate is 0, not missing.
        { expr: `(${runs('succeeded')} or ${runs()} * 0) / ${runs()}`, legend: 'completion rate' },
        { expr: runs(), legend: 'runs' },
      ], { unit: 'percentunit', decimals: 1, countColumns: ['runs'] }).span(12).height(9),
    )
    .withPanel(
      timeseries('Completion rate over the preceding hour', 'The share of each workload\'s runs that succeeded over the hour before each point (the SLI recording rules), 100 % for a workload that ran without failing.', [
        { expr: `1 - ${failureRatio('1h')}`, legend: '{{namespace}}/{{job}}' },
      ], { unit: 'percentunit', min: 0 }).span(12).height(9),
    )

    .withRow(row('Run time of successful runs'))
    .withPanel(
      table('Run time of successful runs per workload', 'From the Job\'s start to its Complete condition, over the successful runs of the selected range: the mean, and the median and 90th percentile estimated from the histogram\'s buckets (1 s, 5 s, 10 s, 30 s, 1 m, … 1 d).', [
        { expr: `sum by (namespace, job) (increase(${succeededDuration('sum')}[$__range])) / sum by (namespace, job) (increase(${succeededDuration('count')}[$__range]))`, legend: 'mean' },
        { expr: `histogram_quantile(0.5, sum by (namespace, job, le) (increase(${succeededDuration('bucket')}[$__range])))`, legend: 'p50' },
        { expr: `histogram_quantile(0.9, sum by (namespace, job, le) (increase(${succeededDuration('bucket')}[$__range])))`, legend: 'p90' },
      ], { unit: 's', decimals: 1 }).span(24).height(9),
    )

    .withRow(row('Failures'))
    .withPanel(
      table('Top failing workloads', 'The ten workloads with the most failed runs in the selected range.', [
        { expr: `topk(10, ${runs('failed')} > 0)`, legend: 'failed runs' },
      ], { decimals: 0 }).span(8).height(9),
    )
    .withPanel(
      table('Why runs failed', 'Failed runs by the reason of the Job\'s Failed condition, in the Job controller\'s words.', [
        { expr: `sum by (namespace, job, reason) (increase(${RUNS}{${NS}, result="failed"}[$__range])) > 0`, legend: 'failed runs' },
      ], { decimals: 0 }).span(8).height(9),
    )
    .withPanel(
      table('Why attempts failed', 'Failed attempts (main-container runs, restarts in place included) by reason (OOMKilled, Error, Evicted, DeadlineExceeded, …) and exit code.', [
        { expr: `sum by (namespace, job, reason, exit_code) (increase(jobmetrics_job_attempts_total{${NS}, result="failed"}[$__range])) > 0`, legend: 'failed attempts' },
      ], { decimals: 0 }).span(8).height(9),
    )
    .withPanel(
      table('CronJobs: time since the last success', 'Now minus each CronJob\'s status.lastSuccessfulTime; red past 26 h (the JobmetricsCronJobNoRecentSuccess alert).', [
        { expr: `time() - max by (namespace, job) (jobmetrics_cronjob_last_success_timestamp_seconds:max{${NS}})`, legend: 'since the last success' },
      ], { unit: 's', redAbove: 26 * 3600 }).span(24).height(7),
    )

    .withRow(row('Completion SLO: 95 % of runs succeed'))
    .withPanel(
      timeseries('Error-budget burn rate', 'The failed share of runs divided by the 5 % budget, over 1 h and 6 h windows. The fast-burn alert fires above 14.4 (1 h, confirmed over 5 m), the slow-burn alert above 6 (6 h, confirmed over 30 m).', [
        { expr: `${failureRatio('1h')} / 0.05`, legend: '{{namespace}}/{{job}} 1h' },
        { expr: `${failureRatio('6h')} / 0.05`, legend: '{{namespace}}/{{job}} 6h' },
      ], { min: 0, redAbove: 6 }).span(16).height(9),
    )
    .withPanel(
      table('Workloads burning their error budget', 'The SLO alerts firing now, by workload.', [
        { expr: `ALERTS{alertname=~"JobmetricsCompletionSLO.+", alertstate="firing", ${NS}}` },
      ]).span(8).height(9),
    )
    .build();
}
