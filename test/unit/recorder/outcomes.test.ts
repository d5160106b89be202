/**
 * The recorder's pure part on real API objects: `test/fixtures/outcomes/<case>.yaml` is a Job, pod
 * or CronJob as the local cluster's API server returned it (`kubectl get -o yaml`, from the
 * real-pod suite's runs), `<case>.events.yaml` what the recorder makes of it. REFRESH_GOLDEN=1
 * rewrites the goldens; otherwise a mismatch fails with one line per differing JSON pointer.
 */
import { expect } from 'chai';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { parse, stringify } from 'yaml';
import {
  boundedReason,
  DURATION_BUCKETS,
  eventSeries,
  exitCodeClass,
  jobRun,
  lastSuccessSeries,
  podAttempts,
  sidecarFlush,
  unmeasuredPod,
  type OutcomeEvent,
  type RawCronJob,
  type RawJob,
  type RawPodWithStatus,
} from '../../../recorder/outcomes.ts';
import { describeDifference, FIXTURES, REFRESH } from '../webhook/golden.ts';

const DIR = `${FIXTURES}outcomes/`;
const cases = readdirSync(DIR)
  .filter((f) => f.endsWith('.yaml') && !f.endsWith('.events.yaml'))
  .map((f) => f.slice(0, -'.yaml'.length))
  .sort();
const load = (name: string): Record<string, unknown> & { kind?: string } => parse(readFileSync(`${DIR}${name}.yaml`, 'utf8')) as Record<string, unknown>;

/** What the recorder derives from one object: events (Jobs, pods) or the gauge series (CronJobs). */
function derive(obj: Record<string, unknown> & { kind?: string }): unknown {
  if (obj.kind === 'Job') return { run: jobRun(obj as RawJob) ?? null };
  if (obj.kind === 'Pod') {
    const pod = obj as unknown as RawPodWithStatus;
    return { attempts: podAttempts(pod, 'workload'), unmeasured: unmeasuredPod(pod, 'workload') ?? null, flush: sidecarFlush(pod, 'workload') ?? null };
  }
  if (obj.kind === 'CronJob') return { lastSuccess: lastSuccessSeries(obj as RawCronJob, 1_800_000_000_000) ?? null };
  throw new Error(`unexpected kind ${String(obj.kind)}`);
}

describe('outcomes: real Job, pod and CronJob objects → events (recorder/outcomes.ts, golden fixtures)', () => {
  it('has fixtures of every kind it reads', () => {
    expect(new Set(cases.map((c) => load(c).kind))).to.deep.equal(new Set(['Job', 'Pod', 'CronJob']));
  });
  for (const name of cases) {
    it(name, () => {
      const actual = JSON.parse(JSON.stringify(derive(load(name)))) as unknown;
      const path = `${DIR}${name}.events.yaml`;
      if (REFRESH) {
        writeFileSync(path, `# What recorder/outcomes.ts derives from ${name}.yaml (REFRESH_GOLDEN=1 rewrites it).\n${stringify(actual, { lineWidth: 120 })}`);
        return;
      }
      const diff = describeDifference(parse(readFileSync(path, 'utf8')), actual);
      expect(diff, diff).to.equal('');
    });
  }
});

describe('outcomes: the rules, case by case', () => {
  const event = (name: string): OutcomeEvent[] => {
    const d = derive(load(name)) as { run?: OutcomeEvent | null; attempts?: OutcomeEvent[] };
    return d.run ? [d.run] : (d.attempts ?? []);
  };
  const labelsOf = (events: OutcomeEvent[]): Array<Record<string, string>> => events.map((e) => ({ ...e.counters[0]?.labels }));

  const runs: Array<[string, Record<string, string>]> = [
    ['job-complete', { result: 'succeeded', reason: 'CompletionsReached' }],
    ['job-backoff-limit', { result: 'failed', reason: 'BackoffLimitExceeded' }],
    ['job-deadline', { result: 'failed', reason: 'DeadlineExceeded' }],
  ];
  for (const [name, labels] of runs) {
    it(`${name}: one run, ${labels['result']} / ${labels['reason']}`, () => expect(labelsOf(event(name))).to.deep.equal([labels]));
  }

  it('the workload: the annotation when the webhook would accept it, else the CronJob or the Job', () => {
    const job = load('job-complete') as unknown as RawJob;
    const withAnnotation = (value: string): RawJob => ({ ...job, spec: { ...job.spec, template: { metadata: { annotations: { 'jobmetrics.io/workload': value } } } } });
    expect(jobRun(job)?.workload).to.equal('counts');
    expect(jobRun(withAnnotation('nightly-import'))?.workload).to.equal('nightly-import');
    expect(jobRun(withAnnotation('$(JOBMETRICS_POD)'))?.workload).to.equal('counts');
    expect(jobRun(withAnnotation('x'.repeat(64)))?.workload).to.equal('counts');
  });

  it('a running Job is no event yet', () => expect(derive(load('job-running'))).to.deep.equal({ run: null }));

  const attempts: Array<[string, Array<Record<string, string>>]> = [
    ['pod-completed', [{ result: 'succeeded', reason: 'Completed', exit_code: '0' }]],
    ['pod-failed', [{ result: 'failed', reason: 'Error', exit_code: 'other' }]],
    ['pod-oom-killed', [{ result: 'failed', reason: 'OOMKilled', exit_code: '137' }]],
    // restartPolicy OnFailure: the status shows the last restart and the final run.
    ['pod-restarted-in-place', [{ result: 'failed', reason: 'Error', exit_code: '1' }, { result: 'succeeded', reason: 'Completed', exit_code: '0' }]],
  ];
  for (const [name, labels] of attempts) {
    it(`${name}: ${labels.map((l) => `${l['result']}/${l['reason']}/${l['exit_code']}`).join(', ')}`, () => expect(labelsOf(event(name))).to.deep.equal(labels));
  }

  it('attempt ids follow the restart count, so the same attempt in two statuses is one event', () => {
    expect(event('pod-restarted-in-place').map((e) => e.id.split('/').slice(2))).to.deep.equal([['1'], ['2']]);
  });

  it('an injected pod is measured; an opted-out one and a skipped one are not, each with its reason', () => {
    expect((derive(load('pod-completed')) as { unmeasured: unknown }).unmeasured).to.equal(null);
    expect((derive(load('pod-opted-out')) as { unmeasured: OutcomeEvent }).unmeasured.counters[0]?.labels).to.deep.equal({ reason: 'opted-out' });
    expect((derive(load('pod-skipped')) as { unmeasured: OutcomeEvent }).unmeasured.counters[0]?.labels).to.deep.equal({ reason: 'skipped' });
  });

  it('a pod the webhook never saw (no status annotation, no sidecar) was let through unmeasured', () => {
    const pod = load('pod-skipped') as unknown as RawPodWithStatus;
    const annotations = { ...pod.metadata?.annotations };
    delete annotations['jobmetrics.io/status'];
    const unseen = { ...pod, metadata: { ...pod.metadata, annotations } } as RawPodWithStatus;
    expect(unmeasuredPod(unseen, 'w')?.counters[0]?.labels).to.deep.equal({ reason: 'webhook-unreachable' });
  });
});

describe("outcomes: how a pod's sidecar ended and what it did, from its termination message", () => {
  // The completed pod's sidecar, its message, phase and restarts changed per row.
  const base = load('pod-completed') as unknown as RawPodWithStatus;
  const withSidecar = (message: string | undefined, phase = 'Succeeded', terminated = true, restarts = 0): RawPodWithStatus => {
    const pod = structuredClone(base);
    pod.status = { ...pod.status, phase };
    for (const st of pod.status.initContainerStatuses ?? []) {
      if (st.name !== 'jobmetrics-sidecar') continue;
      st.restartCount = restarts;
      if (!terminated) st.state = { running: { startedAt: '2026-12-05T22:05:00Z' } };
      else if (st.state?.terminated) {
        const { message: _old, ...rest } = st.state.terminated;
        st.state.terminated = message === undefined ? rest : { ...rest, message };
      }
    }
    return pod;
  };
  const HEAD = 'jobmetrics final values: trigger=main-exited attempt=1';
  /** The event's counters as `name{labels}` → value, without the `jobmetrics_sidecar_` prefix and `_total`. */
  const counted = (e: OutcomeEvent): Record<string, number> =>
    Object.fromEntries(
      e.counters.map((c) => {
        const labels = Object.entries(c.labels).map(([k, v]) => `${k}=${v}`).join(',');
        return [`${c.name.replace(/^jobmetrics_sidecar_/, '').replace(/_total$/, '')}${labels ? `{${labels}}` : ''}`, c.value];
      }),
    );
  const rows: Array<[what: string, pod: RawPodWithStatus, want: Record<string, number> | 'none']> = [
    [
      'delivered; deliveries and retries counted, zeros too (known zeros); no drops',
      withSidecar(`${HEAD} delivered=true series=10 deliveries_ok=12 deliveries_failed=0 retries=0\nx 1`),
      { 'final_flushes{result=delivered}': 1, 'deliveries{result=ok}': 12, 'deliveries{result=failed}': 0, delivery_retries: 0 },
    ],
    [
      'given up at the deadline: the series not delivered, failures, retries, drops by reason',
      withSidecar(`${HEAD} delivered=false undelivered=37 series=40 dropped=9 deliveries_ok=3 deliveries_failed=2 retries=14 dropped_by=duplicate:3,over-limit:6\n`),
      {
        'final_flushes{result=undelivered}': 1,
        undelivered_series: 37,
        'deliveries{result=ok}': 3,
        'deliveries{result=failed}': 2,
        delivery_retries: 14,
        'dropped_samples{reason=duplicate}': 3,
        'dropped_samples{reason=over-limit}': 6,
      },
    ],
    [
      'an older sidecar’s report: the flush counted, its counts unknown (not zero)',
      withSidecar(`${HEAD} delivered=true series=10 dropped=4\nx 1`),
      { 'final_flushes{result=delivered}': 1, 'delivery_counts_unknown{reason=old-sidecar}': 1 },
    ],
    [
      'an older sidecar that gave up',
      withSidecar(`${HEAD} delivered=false undelivered=37 series=40\n`),
      { 'final_flushes{result=undelivered}': 1, undelivered_series: 37, 'delivery_counts_unknown{reason=old-sidecar}': 1 },
    ],
    [
      'a sidecar the kubelet restarted in the pod: its last run’s counts, and a note that earlier runs’ are lost',
      withSidecar(`${HEAD} delivered=true series=10 deliveries_ok=5 deliveries_failed=0 retries=1`, 'Succeeded', true, 1),
      { 'final_flushes{result=delivered}': 1, 'deliveries{result=ok}': 5, 'deliveries{result=failed}': 0, delivery_retries: 1, 'delivery_counts_unknown{reason=sidecar-restarted}': 1 },
    ],
    ['no message (killed, OOM-killed)', withSidecar(undefined), { 'final_flushes{result=no-report}': 1 }],
    ['a message that is not a report', withSidecar('panic: something else'), { 'final_flushes{result=no-report}': 1 }],
    ['the pod still running', withSidecar(`${HEAD} delivered=true series=1 deliveries_ok=1 deliveries_failed=0 retries=0`, 'Running'), 'none'],
    ['over, but the sidecar not terminated in this status', withSidecar(undefined, 'Failed', false), 'none'],
    ['a pod without the sidecar', load('pod-skipped') as unknown as RawPodWithStatus, 'none'],
  ];
  for (const [what, pod, want] of rows) {
    it(what, () => {
      const e = sidecarFlush(pod, 'w');
      expect(e === undefined ? 'none' : counted(e)).to.deep.equal(want);
      if (e) expect([e.id, e.namespace, e.workload]).to.deep.equal([`flush/${pod.metadata?.uid}`, pod.metadata?.namespace, 'w']);
    });
  }
});

describe('outcomes: series of an event', () => {
  const e: OutcomeEvent = {
    id: 'run/u1',
    namespace: 'batch',
    workload: 'nightly',
    atMs: 1_000_000,
    counters: [{ name: 'jobmetrics_job_runs_total', labels: { result: 'failed', reason: 'BackoffLimitExceeded' }, value: 1 }],
    observations: [{ name: 'jobmetrics_job_run_duration_seconds', labels: { result: 'failed' }, value: 42 }],
  };
  const series = eventSeries(e);

  it('every series is 0 one millisecond before the event and its value at it, with the event as `pod`', () => {
    for (const s of series) {
      expect(s.samples.map((x) => x.timestampMs)).to.deep.equal([999_999, 1_000_000]);
      expect(s.samples[0]?.value).to.equal(0);
      expect(Object.fromEntries(s.labels)).to.include({ namespace: 'batch', job: 'nightly', pod: 'run/u1', jobmetrics_kind: 'counter' });
    }
  });

  it('a histogram observation is every bucket (cumulative), +Inf, _sum and _count', () => {
    const values = Object.fromEntries(series.map((s) => [Object.fromEntries(s.labels)['__name__'] + (Object.fromEntries(s.labels)['le'] ?? ''), s.samples[1]?.value]));
    expect(values).to.include({ jobmetrics_job_runs_total: 1, 'jobmetrics_job_run_duration_seconds_bucket30': 0, 'jobmetrics_job_run_duration_seconds_bucket60': 1, 'jobmetrics_job_run_duration_seconds_bucket+Inf': 1, jobmetrics_job_run_duration_seconds_sum: 42, jobmetrics_job_run_duration_seconds_count: 1 });
    expect(series).to.have.length(1 + DURATION_BUCKETS.length + 3);
  });

  it('exit codes and reasons stay within a bounded set', () => {
    expect([0, 1, 2, 3, 42, 126, 127, 137, 139, 143, 255, undefined].map(exitCodeClass)).to.deep.equal(['0', '1', '2', 'other', 'other', '126', '127', '137', '139', '143', 'other', 'unknown']);
    expect([undefined, '', 'OOMKilled', 'oom killed', 'X'.repeat(60), 'Evicted'].map((r) => boundedReason(r, 'Error'))).to.deep.equal(['Error', 'Error', 'OOMKilled', 'Other', 'Other', 'Evicted']);
  });
});
