import { expect } from 'chai';
import { createLogger } from '../../../shared/log.ts';
import {
  cutUtf8,
  FINAL_VALUES_MSG,
  finalReport,
  LOG_VALUES_MAX_BYTES,
  MESSAGE_SERIES_MAX_BYTES,
  TERMINATION_MESSAGE_MAX_BYTES,
  type ReportSummary,
} from '../../../sidecar/final-report.ts';
import { KIND_LABEL, SeriesStore, type FinalValue } from '../../../sidecar/series-store.ts';

const IDENTITY = { namespace: 'batch', job: 'nightly', pod: 'nightly-x1' };
const NO_DROPS = { 'invalid-value': 0, duplicate: 0, 'invalid-labels': 0, 'over-limit': 0 } as const;
const SUMMARY: ReportSummary = { trigger: 'main-exited', attempt: 1, finalDelivered: true, finalUndelivered: 0, deliveriesOk: 3, deliveryFailures: 0, retries: 0, droppedByReason: NO_DROPS };
/** The first line of SUMMARY's message with `series` series. */
const head = (series: number): string => `jobmetrics final values: trigger=main-exited attempt=1 delivered=true series=${series} deliveries_ok=3 deliveries_failed=0 retries=0`;

/** A series as the store holds it: its own labels with `namespace`, `job` and the kind, sorted. */
function series(kind: FinalValue['kind'], name: string, value: number, labels: Record<string, string> = {}): FinalValue {
  const all: Array<readonly [string, string]> = [...Object.entries(labels), ['namespace', 'batch'], ['job', 'nightly'], [KIND_LABEL, kind]];
  all.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return { name, labels: all, kind, value };
}
const counter = (name: string, value: number, labels?: Record<string, string>) => series('counter', name, value, labels);
const gauge = (name: string, value: number, labels?: Record<string, string>) => series('gauge', name, value, labels);

const bytes = (s: string): number => Buffer.byteLength(s, 'utf8');
/** Whether `s` is whole characters: UTF-8 round trip unchanged, no replacement character. */
const whole = (s: string): boolean => Buffer.from(s, 'utf8').toString('utf8') === s && !s.includes('\uFFFD');

describe('final report (final-report.ts): one pod’s numbers as a log line and a termination message', () => {
  interface Case {
    readonly name: string;
    readonly values: readonly FinalValue[];
    readonly summary?: Partial<ReportSummary>;
    readonly limits?: { maxLogValuesBytes?: number; maxMessageBytes?: number };
    /** The whole termination message, or a check of it. */
    readonly message: string | ((m: string) => void);
    /** The log line's `values`, in order, or a check of the fields. */
    readonly values_?: ReadonlyArray<readonly [string, number | string]>;
    readonly fields?: (f: Record<string, unknown>) => void;
  }

  const cases: Case[] = [
    {
      name: 'an empty store: the first line alone, no values, no truncation note',
      values: [],
      message: head(0),
      values_: [],
      fields: (f) => expect(f).to.not.have.property('truncated'),
    },
    {
      name: 'most significant first: counters by value (highest first, equal ones by name and labels), then gauges by name, then buckets in le order',
      values: [
        gauge('temperature_celsius', 21.5),
        counter('req_duration_seconds_bucket', 3, { le: '+Inf' }),
        counter('errors_total', 3),
        counter('req_duration_seconds_bucket', 1, { le: '0.5' }),
        counter('items_total', 1_200, { queue: 'b' }),
        counter('req_duration_seconds_bucket', 2, { le: '10' }),
        gauge('last_success_timestamp_seconds', 1_765_000_000),
        counter('items_total', 1_200, { queue: 'a' }),
        counter('req_duration_seconds_count', 3),
        counter('req_duration_seconds_bucket', 1, { le: '1e-3' }),
      ],
      message: [
        head(10),
        'items_total{queue="a"} 1200',
        'items_total{queue="b"} 1200',
        'errors_total 3',
        'req_duration_seconds_count 3',
        'last_success_timestamp_seconds 1765000000',
        'temperature_celsius 21.5',
        'req_duration_seconds_bucket{le="1e-3"} 1',
        'req_duration_seconds_bucket{le="0.5"} 1',
        'req_duration_seconds_bucket{le="10"} 2',
        'req_duration_seconds_bucket{le="+Inf"} 3',
      ].join('\n'),
      values_: [
        ['items_total{queue="a"}', 1200],
        ['items_total{queue="b"}', 1200],
        ['errors_total', 3],
        ['req_duration_seconds_count', 3],
        ['last_success_timestamp_seconds', 1765000000],
        ['temperature_celsius', 21.5],
        ['req_duration_seconds_bucket{le="1e-3"}', 1],
        ['req_duration_seconds_bucket{le="0.5"}', 1],
        ['req_duration_seconds_bucket{le="10"}', 2],
        ['req_duration_seconds_bucket{le="+Inf"}', 3],
      ],
    },
    {
      name: 'values as the exposition format writes them: integers without .0, NaN, ±Inf (text in the JSON, which has no such numbers)',
      values: [counter('big_total', 12_345_678_901), counter('frac_total', 0.25), gauge('a_up', Infinity), gauge('b_down', -Infinity), gauge('c_nan', NaN), gauge('d_zero', 0)],
      message: [head(6), 'big_total 12345678901', 'frac_total 0.25', 'a_up +Inf', 'b_down -Inf', 'c_nan NaN', 'd_zero 0'].join('\n'),
      values_: [
        ['big_total', 12_345_678_901],
        ['frac_total', 0.25],
        ['a_up', '+Inf'],
        ['b_down', '-Inf'],
        ['c_nan', 'NaN'],
        ['d_zero', 0],
      ],
    },
    {
      name: 'the sidecar’s own labels left out; label values quoted and escaped; a flush that failed says so in the first line',
      values: [counter('x_total', 5, { path: 'a"b\\c\nd', exported_pod: 'p2' })],
      summary: { trigger: 'signal', attempt: 3, finalDelivered: false, finalUndelivered: 1, deliveriesOk: 2, deliveryFailures: 5, retries: 17, droppedByReason: { ...NO_DROPS, 'invalid-value': 1, 'over-limit': 3 } },
      message: ['jobmetrics final values: trigger=signal attempt=3 delivered=false undelivered=1 series=1 dropped=4 deliveries_ok=2 deliveries_failed=5 retries=17 dropped_by=invalid-value:1,over-limit:3', 'x_total{exported_pod="p2",path="a\\"b\\\\c\\nd"} 5'].join('\n'),
      values_: [['x_total{exported_pod="p2",path="a\\"b\\\\c\\nd"}', 5]],
      fields: (f) => expect([f['trigger'], f['attempt'], f['delivered'], f['series']]).to.deep.equal(['signal', 3, false, 1]),
    },
    {
      name: 'the log line cut at its byte bound: a prefix of the order, and the truncation note',
      // {"a_total":3,"b_total":2} is 25 bytes; ,"c_total":1 would make it 37.
      values: [counter('c_total', 1), counter('a_total', 3), counter('b_total', 2)],
      limits: { maxLogValuesBytes: 36 },
      message: [head(3), 'a_total 3', 'b_total 2', 'c_total 1'].join('\n'),
      values_: [
        ['a_total', 3],
        ['b_total', 2],
      ],
      fields: (f) => {
        expect(f['truncated']).to.deep.equal({ kept: 2, total: 3 });
        expect(bytes(JSON.stringify(f['values']))).to.equal(25);
      },
    },
    {
      name: 'the log line at exactly its byte bound keeps everything',
      values: [counter('c_total', 1), counter('a_total', 3), counter('b_total', 2)],
      limits: { maxLogValuesBytes: 37 },
      message: (m) => expect(m.split('\n')).to.have.length(4),
      fields: (f) => {
        expect(f).to.not.have.property('truncated');
        expect(bytes(JSON.stringify(f['values']))).to.equal(37);
      },
    },
    {
      name: 'the termination message cut: whole lines, then how many more',
      values: Array.from({ length: 10 }, (_, i) => counter(`m${i}_total`, 100 - i)),
      // The first line (125 bytes), 3 lines of 13 + 12 + 12 bytes with their line feeds, and
      // "\n… 7 more series" (18 bytes) make 180: a byte less, and m2_total would not fit.
      limits: { maxMessageBytes: 180 },
      message: [head(10), 'm0_total 100', 'm1_total 99', 'm2_total 98', '… 7 more series'].join('\n'),
    },
    {
      name: 'the termination message a byte short of that: one line fewer',
      values: Array.from({ length: 10 }, (_, i) => counter(`m${i}_total`, 100 - i)),
      limits: { maxMessageBytes: 179 },
      message: [head(10), 'm0_total 100', 'm1_total 99', '… 8 more series'].join('\n'),
    },
  ];

  for (const c of cases) {
    it(c.name, () => {
      const r = finalReport(c.values, { ...SUMMARY, ...c.summary }, IDENTITY, c.limits);
      if (typeof c.message === 'string') expect(r.message).to.equal(c.message);
      else c.message(r.message);
      expect(bytes(r.message)).to.be.at.most(c.limits?.maxMessageBytes ?? TERMINATION_MESSAGE_MAX_BYTES);
      expect(r.fields).to.include({ namespace: 'batch', job: 'nightly', pod: 'nightly-x1' });
      if (c.values_ !== undefined) expect(Object.entries(r.fields['values'] as object)).to.deep.equal(c.values_);
      c.fields?.(r.fields);
    });
  }

  it('exactly 4 096 bytes with multibyte label values: every line kept; one byte more and the last becomes “… 1 more series”', () => {
    // 40 series `s00_total{v="ééé…"} 1`, then one whose label pads the message to 4 096 bytes.
    const values: FinalValue[] = [];
    for (let i = 0; i < 40; i++) values.push(counter(`s${String(i).padStart(2, '0')}_total`, 1, { v: 'é'.repeat(40) }));
    const first = head(41);
    const line = (i: number) => `s${String(i).padStart(2, '0')}_total{v="${'é'.repeat(40)}"} 1`;
    let used = bytes(first);
    for (let i = 0; i < 40; i++) used += 1 + bytes(line(i));
    const lastFixed = bytes('\ns40_total{v=""} 1');
    const pad = TERMINATION_MESSAGE_MAX_BYTES - used - lastFixed; // bytes of the last label value
    expect(pad, 'the last line stays under the per-series cut').to.be.within(2, MESSAGE_SERIES_MAX_BYTES - 20);
    const padded = 'é'.repeat(Math.floor(pad / 2)) + 'a'.repeat(pad % 2);

    const exact = finalReport([...values, counter('s40_total', 1, { v: padded })], SUMMARY, IDENTITY).message;
    expect(bytes(exact)).to.equal(TERMINATION_MESSAGE_MAX_BYTES);
    expect(exact.split('\n')).to.have.length(42);
    expect(exact.endsWith(`s40_total{v="${padded}"} 1`)).to.equal(true);

    const over = finalReport([...values, counter('s40_total', 1, { v: padded + 'a' })], SUMMARY, IDENTITY).message;
    expect(bytes(over)).to.be.at.most(TERMINATION_MESSAGE_MAX_BYTES);
    expect(over.split('\n').at(-1)).to.equal('… 1 more series');
    expect(over.split('\n')).to.have.length(42);
    expect(whole(over)).to.equal(true);
  });

  it('one huge label of 3- and 4-byte characters is cut on a character boundary, its value still shown', () => {
    for (const char of ['€', '😀', 'é€😀a']) {
      const r = finalReport([counter('huge_total', 7, { v: char.repeat(5_000) }), counter('small_total', 1)], SUMMARY, IDENTITY);
      const [, first, second] = r.message.split('\n');
      expect(first, char).to.match(/^huge_total\{v=".*… 7$/u);
      expect(bytes(first!.slice(0, -' 7'.length)), char).to.be.within(MESSAGE_SERIES_MAX_BYTES - 3, MESSAGE_SERIES_MAX_BYTES);
      expect(whole(r.message), char).to.equal(true);
      expect(second).to.equal('small_total 1');
    }
  });

  it('cutUtf8 never splits a character, whatever the bound', () => {
    const s = 'aé€😀'.repeat(20);
    for (let max = 0; max <= bytes(s) + 1; max++) {
      const cut = cutUtf8(s, max);
      expect(bytes(cut), `max ${max}`).to.be.at.most(max);
      expect(whole(cut), `max ${max}`).to.equal(true);
      expect(bytes(cut), `max ${max}: the longest such start`).to.be.above(max - 4);
      expect(s.startsWith(cut)).to.equal(true);
    }
  });

  it('6 000 series with long labels: both outputs stay bounded, and only the series that fit are turned into text', () => {
    let reads = 0;
    const values: FinalValue[] = [];
    for (let i = 0; i < 6_000; i++) {
      const v = counter(`series_${i}_total`, 6_000 - i, { path: `/api/v1/items/${'x'.repeat(500)}/${i}` });
      // Count how often the label values are read: text is built only for what is kept.
      const labels = v.labels.map((pair) => {
        const counted = [pair[0], pair[1]] as [string, string];
        Object.defineProperty(counted, 1, { get: () => (reads++, pair[1]) });
        return counted;
      });
      values.push({ ...v, labels });
    }
    const started = process.hrtime.bigint();
    const r = finalReport(values, SUMMARY, IDENTITY);
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    const kept = Object.keys(r.fields['values'] as object).length;
    expect(r.fields['truncated']).to.deep.equal({ kept, total: 6_000 });
    expect(kept).to.be.within(20, 40);
    expect(Object.keys(r.fields['values'] as object)[0]).to.match(/^series_0_total\{path=/);
    expect(bytes(JSON.stringify(r.fields['values']))).to.be.at.most(LOG_VALUES_MAX_BYTES);
    expect(bytes(r.message)).to.be.at.most(TERMINATION_MESSAGE_MAX_BYTES);
    expect(r.message.split('\n').at(-1)).to.match(/^… \d+ more series$/);
    expect(reads, 'label values read').to.be.below(4 * 100);
    expect(ms, 'milliseconds').to.be.below(500);

    // The whole log line, as the sidecar's logger writes it, stays one line under containerd's 16 KiB.
    const lines: string[] = [];
    createLogger({ component: 'jobmetrics-sidecar', sink: (l) => lines.push(l) }).info(FINAL_VALUES_MSG, r.fields);
    expect(lines).to.have.length(1);
    expect(bytes(lines[0]! + '\n')).to.be.at.most(16 * 1024);
    expect(JSON.parse(lines[0]!)).to.include({ level: 'info', msg: 'final values', pod: 'nightly-x1' });
  });

  it('SeriesStore.finalValues: what the pod counted, resets and earlier runs of the main container folded in', () => {
    const store = new SeriesStore({ namespace: 'batch', job: 'nightly', pod: 'nightly-x1', maxSeries: 100 });
    const scrape = (items: number, temp: number, at: number) =>
      store.update(
        [
          { name: 'items', type: 'counter', samples: [{ name: 'items_total', labels: [['queue', 'a']], value: items }] },
          { name: 'temp', type: 'gauge', samples: [{ name: 'temp', labels: [], value: temp }] },
        ],
        at,
      );
    scrape(10, 1, 1_000);
    scrape(3, 2, 2_000); // a reset: 10 before it
    store.mainRestarted(); // a new run of the main container: 13 so far
    scrape(5, 3, 3_000);
    store.startGeneration(); // a new generation changes what is delivered, not what was counted
    const r = finalReport(store.finalValues(), SUMMARY, IDENTITY);
    expect(r.fields['values']).to.deep.equal({ 'items_total{queue="a"}': 18, temp: 3 });
  });
});
