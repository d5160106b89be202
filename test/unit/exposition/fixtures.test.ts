import { expect } from 'chai';
import { fam, fixture, parseOk, s } from './helpers.ts';

const CREATED = 1700000000.25; // the clock pinned by scripts/gen-python-exposition-fixtures.py

describe('exposition parse: the examples of the specifications', () => {
  it('reads the text-format example of prometheus.io "Exposition formats"', () => {
    expect(parseOk(fixture('prometheus-text-example.prom'))).to.deep.equal([
      fam(
        'http_requests_total',
        'counter',
        [
          s('http_requests_total', { method: 'post', code: '200' }, 1027, 1395066363000),
          s('http_requests_total', { method: 'post', code: '400' }, 3, 1395066363000),
        ],
        { help: 'The total number of HTTP requests.' },
      ),
      fam('msdos_file_access_time_seconds', 'untyped', [
        s('msdos_file_access_time_seconds', { path: 'C:\\DIR\\FILE.TXT', error: 'Cannot find file:\n"FILE.TXT"' }, 1458255915),
      ]),
      fam('metric_without_timestamp_and_labels', 'untyped', [s('metric_without_timestamp_and_labels', {}, 12.47)]),
      fam('something_weird', 'untyped', [s('something_weird', { problem: 'division by zero' }, Infinity, -3982045)]),
      fam(
        'http_request_duration_seconds',
        'histogram',
        [
          s('http_request_duration_seconds_bucket', { le: '0.05' }, 24054),
          s('http_request_duration_seconds_bucket', { le: '0.1' }, 33444),
          s('http_request_duration_seconds_bucket', { le: '0.2' }, 100392),
          s('http_request_duration_seconds_bucket', { le: '0.5' }, 129389),
          s('http_request_duration_seconds_bucket', { le: '1' }, 133988),
          s('http_request_duration_seconds_bucket', { le: '+Inf' }, 144320),
          s('http_request_duration_seconds_sum', {}, 53423),
          s('http_request_duration_seconds_count', {}, 144320),
        ],
        { help: 'A histogram of the request duration.' },
      ),
      fam(
        'telemetry_requests_metrics_latency_microseconds',
        'summary',
        [
          s('telemetry_requests_metrics_latency_microseconds', { quantile: '0.01' }, 3102),
          s('telemetry_requests_metrics_latency_microseconds', { quantile: '0.05' }, 3272),
          s('telemetry_requests_metrics_latency_microseconds', { quantile: '0.5' }, 4773),
          s('telemetry_requests_metrics_latency_microseconds', { quantile: '0.9' }, 9001),
          s('telemetry_requests_metrics_latency_microseconds', { quantile: '0.99' }, 76656),
          s('telemetry_requests_metrics_latency_microseconds_sum', {}, 17560473),
          s('telemetry_requests_metrics_latency_microseconds_count', {}, 2693),
        ],
        { help: 'A summary of the response latency.' },
      ),
    ]);
  });

  it('reads the complete exposition example of OpenMetrics 1.0', () => {
    const labels1 = { path: '/api/v1', method: 'GET' };
    const labels2 = { path: '/api/v2', method: 'POST' };
    expect(parseOk(fixture('openmetrics-example.om.txt'), { format: 'openmetrics' })).to.deep.equal([
      fam(
        'acme_http_router_request_seconds',
        'summary',
        [
          s('acme_http_router_request_seconds_sum', labels1, 9036.32),
          s('acme_http_router_request_seconds_count', labels1, 807283),
          s('acme_http_router_request_seconds_created', labels1, 1605281325),
          s('acme_http_router_request_seconds_sum', labels2, 479.3),
          s('acme_http_router_request_seconds_count', labels2, 34),
          s('acme_http_router_request_seconds_created', labels2, 1605281325),
        ],
        { help: "Latency though all of ACME's HTTP request router.", unit: 'seconds' },
      ),
      fam('go_goroutines', 'gauge', [s('go_goroutines', {}, 69)], { help: 'Number of goroutines that currently exist.' }),
      fam('process_cpu_seconds', 'counter', [s('process_cpu_seconds_total', {}, 4200722.46)], {
        help: 'Total user and system CPU time spent in seconds.',
        unit: 'seconds',
      }),
    ]);
  });

  it('reads the OpenMetrics histogram-with-exemplars example, dropping the exemplars', () => {
    expect(parseOk(fixture('openmetrics-exemplars.om.txt'), { format: 'openmetrics' })).to.deep.equal([
      fam('foo', 'histogram', [
        s('foo_bucket', { le: '0.01' }, 0),
        s('foo_bucket', { le: '0.1' }, 8),
        s('foo_bucket', { le: '1' }, 11),
        s('foo_bucket', { le: '10' }, 17),
        s('foo_bucket', { le: '+Inf' }, 17),
        s('foo_count', {}, 17),
        s('foo_sum', {}, 324789.3),
        s('foo_created', {}, 1520430000.123),
      ]),
    ]);
  });

  it('reads the OpenMetrics metric-type examples (each with "# EOF" added)', () => {
    // [om] sections "Metric types": stateset, info, gaugehistogram, summary, unknown.
    const cases: ReadonlyArray<readonly [string, ReturnType<typeof fam>]> = [
      ['# TYPE foo stateset\nfoo{foo="a"} 0\nfoo{foo="bb"} 1\nfoo{foo="ccc"} 0\n', fam('foo', 'stateset', [s('foo', { foo: 'a' }, 0), s('foo', { foo: 'bb' }, 1), s('foo', { foo: 'ccc' }, 0)])],
      [
        '# TYPE foo info\nfoo_info{entity="controller",name="pretty name",version="8.2.7"} 1.0\nfoo_info{entity="replica",name="prettier name",version="8.1.9"} 1.0\n',
        fam('foo', 'info', [
          s('foo_info', { entity: 'controller', name: 'pretty name', version: '8.2.7' }, 1),
          s('foo_info', { entity: 'replica', name: 'prettier name', version: '8.1.9' }, 1),
        ]),
      ],
      [
        '# TYPE foo gaugehistogram\nfoo_bucket{le="0.01"} 20.0\nfoo_bucket{le="0.1"} 25.0\nfoo_bucket{le="1"} 34.0\nfoo_bucket{le="10"} 34.0\nfoo_bucket{le="+Inf"} 42.0\nfoo_gcount 42.0\nfoo_gsum 3289.3\n',
        fam('foo', 'gaugehistogram', [
          s('foo_bucket', { le: '0.01' }, 20),
          s('foo_bucket', { le: '0.1' }, 25),
          s('foo_bucket', { le: '1' }, 34),
          s('foo_bucket', { le: '10' }, 34),
          s('foo_bucket', { le: '+Inf' }, 42),
          s('foo_gcount', {}, 42),
          s('foo_gsum', {}, 3289.3),
        ]),
      ],
      [
        '# TYPE foo summary\nfoo_count 17.0\nfoo_sum 324789.3\nfoo_created 1520430000.123\n',
        fam('foo', 'summary', [s('foo_count', {}, 17), s('foo_sum', {}, 324789.3), s('foo_created', {}, 1520430000.123)]),
      ],
      [
        '# TYPE foo_seconds summary\n# UNIT foo_seconds seconds\nfoo_seconds_count{a="bb"} 0 123\nfoo_seconds_sum{a="bb"} 0 123\nfoo_seconds_count{a="bb"} 0 456\nfoo_seconds_sum{a="bb"} 0 456\n',
        fam(
          'foo_seconds',
          'summary',
          [
            s('foo_seconds_count', { a: 'bb' }, 0, 123000),
            s('foo_seconds_sum', { a: 'bb' }, 0, 123000),
            s('foo_seconds_count', { a: 'bb' }, 0, 456000),
            s('foo_seconds_sum', { a: 'bb' }, 0, 456000),
          ],
          { unit: 'seconds' },
        ),
      ],
      ['# TYPE foo unknown\nfoo 42.23\n', fam('foo', 'unknown', [s('foo', {}, 42.23)])],
      ['# TYPE foo gauge\nfoo{a="b"} 17.0 1520879607.789\n', fam('foo', 'gauge', [s('foo', { a: 'b' }, 17, 1520879607789)])],
      ['bar_seconds_count{a="x",b="escaping\\" example \\n "} 0\n', fam('bar_seconds_count', 'unknown', [s('bar_seconds_count', { a: 'x', b: 'escaping" example \n ' }, 0)])],
    ];
    for (const [body, family] of cases) {
      expect(parseOk(`${body}# EOF\n`, { format: 'openmetrics' }), body).to.deep.equal([family]);
    }
  });
});

describe("exposition parse: real outputs of Python's prometheus_client", () => {
  const path = { queue: 'path "C:\\tmp"\nnext' };
  const commonTail = (om: boolean) => [
    fam('inflight_requests', 'gauge', [s('inflight_requests', {}, -3.5)], { help: 'Requests in flight\nright now.' }),
    fam(
      'special_values',
      'gauge',
      [s('special_values', { kind: 'nan' }, NaN), s('special_values', { kind: 'pinf' }, Infinity), s('special_values', { kind: 'minf' }, -Infinity)],
      { help: 'NaN and infinities.' },
    ),
    fam(
      'job_duration_seconds',
      'histogram',
      [
        s('job_duration_seconds_bucket', { le: '0.1', outcome: 'ok' }, 1),
        s('job_duration_seconds_bucket', { le: '1.0', outcome: 'ok' }, 2),
        s('job_duration_seconds_bucket', { le: '10.0', outcome: 'ok' }, 3),
        s('job_duration_seconds_bucket', { le: '+Inf', outcome: 'ok' }, 4),
        s('job_duration_seconds_count', { outcome: 'ok' }, 4),
        s('job_duration_seconds_sum', { outcome: 'ok' }, 55.55),
        ...(om ? [s('job_duration_seconds_created', { outcome: 'ok' }, CREATED)] : []),
      ],
      { help: 'Job duration.' },
    ),
    ...(om ? [] : [fam('job_duration_seconds_created', 'gauge', [s('job_duration_seconds_created', { outcome: 'ok' }, CREATED)], { help: 'Job duration.' })]),
    fam(
      'payload_size_bytes',
      'summary',
      [
        s('payload_size_bytes_count', {}, 2),
        s('payload_size_bytes_sum', {}, 400),
        ...(om ? [s('payload_size_bytes_created', {}, CREATED)] : []),
      ],
      { help: 'Payload size.' },
    ),
    ...(om ? [] : [fam('payload_size_bytes_created', 'gauge', [s('payload_size_bytes_created', {}, CREATED)], { help: 'Payload size.' })]),
    om
      ? fam('build', 'info', [s('build_info', { revision: 'abc"def', version: '1.2.3' }, 1)], { help: 'Build information.' })
      : fam('build_info', 'gauge', [s('build_info', { revision: 'abc"def', version: '1.2.3' }, 1)], { help: 'Build information.' }),
    fam(
      'job_state',
      om ? 'stateset' : 'gauge',
      [s('job_state', { job_state: 'pending' }, 0), s('job_state', { job_state: 'running' }, 1), s('job_state', { job_state: 'done' }, 0)],
      { help: 'Current state.' },
    ),
  ];

  it('reads generate_latest (text 0.0.4): _total counters, _created as separate gauges', () => {
    expect(parseOk(fixture('python-client.prom'))).to.deep.equal([
      fam('jobs_processed_total', 'counter', [s('jobs_processed_total', { queue: 'default' }, 42), s('jobs_processed_total', path, 1.5)], {
        help: 'Work items processed.',
      }),
      fam('jobs_processed_created', 'gauge', [s('jobs_processed_created', { queue: 'default' }, CREATED), s('jobs_processed_created', path, CREATED)], {
        help: 'Work items processed.',
      }),
      fam('read_bytes_total', 'counter', [s('read_bytes_total', {}, 1024)], { help: 'Bytes read.' }),
      fam('read_bytes_created', 'gauge', [s('read_bytes_created', {}, CREATED)], { help: 'Bytes read.' }),
      ...commonTail(false),
    ]);
  });

  it('reads openmetrics generate_latest: _created inside the family, UNIT, info and stateset', () => {
    expect(parseOk(fixture('python-client.om.txt'), { format: 'openmetrics' })).to.deep.equal([
      fam(
        'jobs_processed',
        'counter',
        [
          s('jobs_processed_total', { queue: 'default' }, 42),
          s('jobs_processed_created', { queue: 'default' }, CREATED),
          s('jobs_processed_total', path, 1.5),
          s('jobs_processed_created', path, CREATED),
        ],
        { help: 'Work items processed.' },
      ),
      fam('read_bytes', 'counter', [s('read_bytes_total', {}, 1024), s('read_bytes_created', {}, CREATED)], { help: 'Bytes read.', unit: 'bytes' }),
      ...commonTail(true),
    ]);
  });
});
