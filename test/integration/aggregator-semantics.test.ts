/**
 * What vmagent 1.112 stream aggregation really does with what the sidecar sends: each fact of
 * docs/semantics.md, checked against the real stack (vmagent with manifests/aggregator/
 * stream-aggr.yaml at a 1 s interval and a 6 s staleness interval, writing to Prometheus 2.53) by
 * pushing raw remote-write requests. If a new vmagent changes any of this, a test here fails and
 * docs/semantics.md must change with it.
 *
 * Set JOBMETRICS_SEMANTICS_REPORT=1 to print the measured numbers.
 */
import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startStack, type Stack } from '../../scripts/aggregator-stack.ts';
import { countedTotal } from '../../scripts/output-exactness.ts';
import { closeIdleConnections, encodeWriteRequest, sendWriteRequest, type RwSeries } from '../../shared/remote-write.ts';

const NS = 'semantics';
const STALENESS_MS = 6_000;
const report: string[] = [];
const note = (line: string): void => {
  report.push(line);
};

type Kind = 'counter' | 'gauge';

/** One series as the sidecar shapes it: namespace, job, pod and the kind label. */
function series(name: string, pod: string, kind: Kind, points: ReadonlyArray<readonly [value: number, timestampMs: number]>): RwSeries {
  return {
    labels: [
      ['__name__', name],
      ['namespace', NS],
      ['job', 'w'],
      ['pod', pod],
      ['jobmetrics_kind', kind],
    ],
    samples: points.map(([value, timestampMs]) => ({ value, timestampMs })),
  };
}

describe('aggregator semantics: vmagent 1.112 stream aggregation, measured', function () {
  this.timeout(120_000);
  let stack: Stack;
  let startedAt: number;

  const push = async (...s: RwSeries[]): Promise<void> => {
    const out = await sendWriteRequest(stack.remoteWriteUrl, encodeWriteRequest(s), { timeoutMs: 5_000 });
    if (!out.ok) throw out.error;
  };
  /** The aggregated value of `name` after everything pushed so far reached Prometheus. */
  const value = async (name: string): Promise<number | undefined> => {
    await stack.flush();
    const r = await stack.query(`${name}{namespace="${NS}"}`);
    expect(r.length, `${name}: one output series`).to.be.at.most(1);
    return r[0]?.value;
  };
  /** Every output sample Prometheus stored for `name`: [timestamp ms, value]. */
  const samples = async (name: string): Promise<Array<[number, number]>> => {
    const res = await fetch(`${stack.prometheusUrl}/api/v1/query`, { method: 'POST', body: new URLSearchParams({ query: `${name}{namespace="${NS}"}[10m]` }) });
    const body = (await res.json()) as { data: { result: Array<{ values: Array<[number, string]> }> } };
    expect(body.data.result.length, `${name}: one output series`).to.be.at.most(1);
    return (body.data.result[0]?.values ?? []).map(([ts, v]) => [Math.round(ts * 1000), Number(v)]);
  };
  /** The output values of `name` once everything pushed so far is in, consecutive repeats collapsed. */
  const history = async (name: string): Promise<number[]> => {
    await stack.flush();
    const out: number[] = [];
    for (const [, n] of await samples(name)) if (out[out.length - 1] !== n) out.push(n);
    return out;
  };
  /** Waits until `offsetMs` after vmagent's next aggregation flush (output timestamps give the phase). */
  const afterNextFlush = async (outputName: string, offsetMs: number): Promise<void> => {
    const last = (await samples(outputName)).at(-1);
    if (last === undefined) throw new Error(`no output sample of ${outputName} to take the flush phase from`);
    const phase = last[0] % 1000;
    await sleep((phase + offsetMs - (Date.now() % 1000) + 2000) % 1000);
  };

  let dir: string;
  let failed = false;
  afterEach(function () {
    if (this.currentTest?.state === 'failed') failed = true;
  });

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'jobmetrics-semantics-'));
    // ignore_first_sample_interval is left at vmagent's default, which is the staleness interval.
    stack = await startStack({ dir, stalenessInterval: `${STALENESS_MS / 1000}s`, aggregationInterval: '1s' });
    startedAt = Date.now();
  });
  after(async () => {
    await stack?.stop();
    closeIdleConnections();
    // Logs and data stay for a failed run (the error names the folder's logs).
    if (!failed && dir) rmSync(dir, { recursive: true, force: true });
    if (process.env['JOBMETRICS_SEMANTICS_REPORT'] === '1') process.stdout.write(report.map((l) => `    ${l}\n`).join(''));
  });

  it('(a, b) right after vmagent starts: a first value alone is dropped, after an explicit 0 it is exact', async () => {
    const now = Date.now();
    expect(now - startedAt).to.be.below(STALENESS_MS - 2_000, 'still inside the ignore window');
    await push(series('sem_a_alone_total', 'p1', 'counter', [[5, now]]), series('sem_b_zero_total', 'p1', 'counter', [[0, now - 1], [5, now]]));
    const alone = await value('sem_a_alone_total');
    const zero = await value('sem_b_zero_total');
    note(`(a) first value 5 alone, ${now - startedAt} ms after start: total ${alone}; (b) 0 then 5: total ${zero}`);
    expect(alone).to.equal(0);
    expect(zero).to.equal(5);
  });

  it('(c, d) duplicates and retried older samples count once; a reset inside a series adds the new value', async () => {
    const t = Date.now();
    // (c) 0, 10; the same 10 again; 15; then a retry of the older request (0, 10); 15 again.
    await push(series('sem_c_total', 'p1', 'counter', [[0, t - 1], [10, t]]));
    await push(series('sem_c_total', 'p1', 'counter', [[10, t]]));
    await push(series('sem_c_total', 'p1', 'counter', [[15, t + 100]]));
    await push(series('sem_c_total', 'p1', 'counter', [[0, t - 1], [10, t]]));
    await push(series('sem_c_total', 'p1', 'counter', [[15, t + 100]]));
    // A lower value with the SAME timestamp is not skipped: it reads as a reset (sidecar must never
    // send two values of one series with one timestamp).
    await push(series('sem_c_samets_total', 'p1', 'counter', [[0, t - 1], [10, t]]));
    await push(series('sem_c_samets_total', 'p1', 'counter', [[7, t]]));
    // (d) 0, 10, 15, then the process restarted and counted 3.
    await push(series('sem_d_total', 'p1', 'counter', [[0, t - 1], [10, t], [15, t + 100]]));
    await push(series('sem_d_total', 'p1', 'counter', [[3, t + 200]]));
    const c = await value('sem_c_total');
    const same = await value('sem_c_samets_total');
    const d = await value('sem_d_total');
    note(`(c) 0,10,dup 10,15,retry 0+10,dup 15: total ${c}; same timestamp 10 then 7: total ${same}; (d) 0,10,15,reset to 3: total ${d}`);
    expect(c).to.equal(15);
    expect(same).to.equal(17);
    expect(d).to.equal(18);
  });

  it('(g) gauges: <name>:max is the highest value; <name>:last the NEWEST sample by timestamp, not the last received', async () => {
    const t = Date.now();
    // One request, so both land in one aggregation interval; p1 (newer, 3) is received first.
    await push(series('sem_g', 'p1', 'gauge', [[3, t]]), series('sem_g', 'p2', 'gauge', [[7, t - 500]]));
    await stack.flush();
    const g = new Map((await stack.query(`{__name__=~"sem_g:.*",namespace="${NS}"}`)).map((r) => [r.metric['__name__'], r.value]));
    // Outputs exist only for intervals that received a sample.
    await sleep(3_000);
    const recent = await stack.query(`count_over_time(sem_g:max{namespace="${NS}"}[2s])`);
    note(`(g) p1=3 (newer, received first), p2=7 (older, received last): max ${g.get('sem_g:max')}, last ${g.get('sem_g:last')}; samples in 2 s without input: ${recent.length}`);
    expect(g.get('sem_g:max')).to.equal(7);
    expect(g.get('sem_g:last')).to.equal(3);
    expect([...g.keys()].sort()).to.deep.equal(['sem_g:last', 'sem_g:max']);
    expect(recent).to.deep.equal([]);
  });

  it('(a) after the ignore window (= staleness interval), a new series\u2019 first value counts in full', async () => {
    await sleep(Math.max(0, startedAt + STALENESS_MS + 1_500 - Date.now()));
    await push(series('sem_a_late_total', 'p1', 'counter', [[7, Date.now()]]));
    const late = await value('sem_a_late_total');
    note(`(a) first value 7 alone, after the ignore window: total ${late}`);
    expect(late).to.equal(7);
  });

  it('(e, f) staleness: a forgotten series counts its resent value again; an output whose inputs all went stale restarts', async () => {
    const t = Date.now();
    // (f) pod A counted 10, pod B keeps the output alive; A is silent for longer than staleness.
    await push(
      series('sem_f_total', 'A', 'counter', [[0, t - 1], [10, t]]),
      series('sem_f_total', 'B', 'counter', [[0, t - 1], [1, t]]),
      series('sem_fgen_total', 'A', 'counter', [[0, t - 1], [10, t]]),
      series('sem_fgen_total', 'B', 'counter', [[0, t - 1], [1, t]]),
      // (e) three outputs whose only input goes stale.
      series('sem_e_down_total', 'p1', 'counter', [[0, t - 1], [5, t]]),
      series('sem_e_up_total', 'p1', 'counter', [[0, t - 1], [5, t]]),
      series('sem_e_zero_total', 'p1', 'counter', [[0, t - 1], [5, t]]),
    );
    expect(await value('sem_f_total')).to.equal(11);
    const quietUntil = Date.now() + STALENESS_MS + 3_000;
    while (Date.now() < quietUntil) {
      await sleep(1_000);
      const now = Date.now();
      await push(series('sem_f_total', 'B', 'counter', [[1, now]]), series('sem_fgen_total', 'B', 'counter', [[1, now]]));
    }
    // A meanwhile counted 13 and delivers again. Same pod label, cumulative value: counted twice.
    // New generation (new pod value, explicit 0, then only what was counted since the last
    // delivered 10): exact.
    const now = Date.now();
    await push(
      series('sem_f_total', 'A', 'counter', [[13, now]]),
      series('sem_fgen_total', 'A/gen1', 'counter', [[0, now - 1], [3, now]]),
      series('sem_e_down_total', 'p2', 'counter', [[0, now - 1], [2, now]]),
      series('sem_e_up_total', 'p2', 'counter', [[0, now - 1], [8, now]]),
      series('sem_e_zero_total', 'p2', 'counter', [[0, now - 1]]),
    );
    await stack.flush();
    await push(series('sem_e_zero_total', 'p2', 'counter', [[8, Date.now()]]));
    const f = await value('sem_f_total');
    const fgen = await value('sem_fgen_total');
    const down = await history('sem_e_down_total');
    const up = await history('sem_e_up_total');
    const zero = await history('sem_e_zero_total');
    note(`(f) A 10 + B 1, A silent ${STALENESS_MS + 3_000} ms, A resends cumulative 13: total ${f} (true 14); as generation A/gen1 with 0, 3: total ${fgen}`);
    note(`(e) output history after its only input went stale, new pod 0,2: [${down}]; new pod 0,8 in one request: [${up}] (counted downstream ${countedTotal(up)}, true 13); 0 one interval before 8: [${zero}] (counted ${countedTotal(zero)})`);
    expect(f).to.equal(24);
    expect(fgen).to.equal(14);
    expect(down).to.deep.equal([5, 2]);
    expect(up).to.deep.equal([5, 8]);
    expect(countedTotal(up)).to.equal(8); // 5 lost downstream: the restart is invisible
    expect(zero).to.deep.equal([5, 0, 8]);
    expect(countedTotal(zero)).to.equal(13);
  });

  it('(h, b) vmagent restart: outputs restart; a resent cumulative value is only a baseline; resending the last acknowledged sample first keeps it exact', async () => {
    const t = Date.now();
    await push(
      series('sem_h_total', 'p1', 'counter', [[0, t - 1], [10, t]]),
      series('sem_h_acked_total', 'p1', 'counter', [[0, t - 1], [10, t]]),
    );
    expect(await value('sem_h_total')).to.equal(10);
    // Pushed but not yet flushed when vmagent stops: flush_on_shutdown writes it on SIGTERM.
    await push(series('sem_h_total', 'p1', 'counter', [[12, t + 100]]), series('sem_h_acked_total', 'p1', 'counter', [[12, t + 100]]));
    await stack.restartVmagent('SIGTERM');
    const restartedAt = Date.now();
    let now = Date.now();
    // Right after the restart (inside the ignore window): 15 alone vs. the last acknowledged (12 at
    // its original timestamp) followed by 15; and two new series, with and without the explicit 0.
    await push(
      series('sem_h_total', 'p1', 'counter', [[15, now]]),
      series('sem_h_acked_total', 'p1', 'counter', [[12, t + 100], [15, now]]),
      series('sem_b_after_restart_total', 'p1', 'counter', [[0, now - 1], [4, now]]),
      series('sem_a_after_restart_total', 'p1', 'counter', [[4, now]]),
    );
    await stack.flush();
    now = Date.now();
    await push(series('sem_h_total', 'p1', 'counter', [[20, now]]), series('sem_h_acked_total', 'p1', 'counter', [[20, now]]));
    const h = await history('sem_h_total');
    const acked = await history('sem_h_acked_total');
    const b = await value('sem_b_after_restart_total');
    const a = await value('sem_a_after_restart_total');
    const promIncrease = (await stack.query(`increase(sem_h_total{namespace="${NS}"}[2m])`))[0]?.value;
    const promIncreaseAcked = (await stack.query(`increase(sem_h_acked_total{namespace="${NS}"}[2m])`))[0]?.value;
    const resets = (await stack.query(`resets(sem_h_total{namespace="${NS}"}[2m])`))[0]?.value;
    note(`(h) restart ${Date.now() - restartedAt} ms ago; cumulative 0,10,12 | restart | 15,20: output history [${h}], counted downstream ${countedTotal(h)} (true 20), Prometheus increase()[2m] ${promIncrease}, resets ${resets}`);
    note(`(h) same, but 12@its timestamp resent before 15: [${acked}], counted ${countedTotal(acked)}, Prometheus increase()[2m] ${promIncreaseAcked}`);
    note(`(b) after restart: new series 0,4: total ${b}; 4 alone: total ${a}`);
    expect(h).to.deep.equal([10, 12, 0, 5]);
    expect(countedTotal(h)).to.equal(17);
    expect(acked).to.deep.equal([10, 12, 3, 8]);
    expect(countedTotal(acked)).to.equal(20);
    expect(resets).to.equal(1);
    expect(b).to.equal(4);
    expect(a).to.equal(0);
  });

  it('(h) a crash (SIGKILL) loses the outputs of the interval in progress', async () => {
    const t = Date.now();
    await push(series('sem_k_total', 'p1', 'counter', [[0, t - 1], [10, t]]));
    expect(await value('sem_k_total')).to.equal(10);
    // Well inside an interval, so no flush can fall between this push and the kill.
    await afterNextFlush('sem_k_total', 300);
    await push(series('sem_k_total', 'p1', 'counter', [[12, t + 100]]));
    await stack.restartVmagent('SIGKILL');
    const k = await history('sem_k_total');
    note(`(h) 0,10 flushed, 12 pushed, then SIGKILL: output history [${k}]`);
    expect(k).to.deep.equal([10]);
  });
});
