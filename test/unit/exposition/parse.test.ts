import { expect } from 'chai';
import { parse } from '../../../shared/exposition/parse.ts';
import type { ExpositionFormat, MetricFamily } from '../../../shared/exposition/types.ts';
import { fam, parseErr, parseOk, s } from './helpers.ts';

interface OkCase {
  readonly what: string;
  readonly body: string;
  readonly families: MetricFamily[];
}

interface ErrCase {
  readonly what: string;
  readonly body: string;
  readonly line: number;
  /** A part of the message that says what was wrong. */
  readonly message: string;
}

function okCases(format: ExpositionFormat, cases: readonly OkCase[]): void {
  for (const c of cases) {
    it(c.what, () => {
      expect(parseOk(c.body, { format })).to.deep.equal(c.families);
    });
  }
}

function errCases(format: ExpositionFormat, cases: readonly ErrCase[]): void {
  for (const c of cases) {
    it(c.what, () => {
      const error = parseErr(c.body, { format });
      expect(error.line, error.message).to.equal(c.line);
      expect(error.message).to.include(c.message);
      expect(error.message).to.match(new RegExp(`^line ${c.line}: `));
    });
  }
}

describe('exposition parse: Prometheus text format 0.0.4', () => {
  describe('accepts', () => {
    okCases('prometheus', [
      { what: 'an empty body as no families', body: '', families: [] },
      { what: 'blank lines, whitespace-only lines and plain comments as nothing', body: '\n \t\n# a comment\n#\n', families: [] },
      {
        what: 'a minimal sample as an untyped family',
        body: 'up 1\n',
        families: [fam('up', 'untyped', [s('up', {}, 1)])],
      },
      {
        what: 'HELP and TYPE in either order before the samples',
        body: '# TYPE a gauge\n# HELP a The a.\na 2\n# HELP b The b.\n# TYPE b gauge\nb 3\n',
        families: [fam('a', 'gauge', [s('a', {}, 2)], { help: 'The a.' }), fam('b', 'gauge', [s('b', {}, 3)], { help: 'The b.' })],
      },
      {
        what: 'a counter named with _total (prom-client, Python)',
        body: '# TYPE jobs_total counter\njobs_total{q="a"} 1\njobs_total{q="b"} 2\n',
        families: [fam('jobs_total', 'counter', [s('jobs_total', { q: 'a' }, 1), s('jobs_total', { q: 'b' }, 2)])],
      },
      {
        what: 'a counter named without _total, with _total and _created samples',
        body: '# TYPE jobs counter\njobs_total 7\njobs_created 1700000000\n',
        families: [fam('jobs', 'counter', [s('jobs_total', {}, 7), s('jobs_created', {}, 1700000000)])],
      },
      {
        what: 'a counter whose sample has the bare family name',
        body: '# TYPE jobs counter\njobs 7\n',
        families: [fam('jobs', 'counter', [s('jobs', {}, 7)])],
      },
      {
        what: 'a histogram: _bucket with le, _sum, _count in one family',
        body:
          '# TYPE d histogram\nd_bucket{le="0.5"} 1\nd_bucket{le="+Inf"} 2\nd_sum 1.25\nd_count 2\n',
        families: [
          fam('d', 'histogram', [s('d_bucket', { le: '0.5' }, 1), s('d_bucket', { le: '+Inf' }, 2), s('d_sum', {}, 1.25), s('d_count', {}, 2)]),
        ],
      },
      {
        what: 'a summary: quantiles under the bare name, _sum, _count',
        body: '# TYPE q summary\nq{quantile="0.5"} 3\nq_sum 9\nq_count 3\n',
        families: [fam('q', 'summary', [s('q', { quantile: '0.5' }, 3), s('q_sum', {}, 9), s('q_count', {}, 3)])],
      },
      {
        what: 'a TYPE untyped family',
        body: '# TYPE u untyped\nu 1\n',
        families: [fam('u', 'untyped', [s('u', {}, 1)])],
      },
      {
        what: 'a sample with a suffix its family type does not allow as a new untyped family',
        body: '# TYPE g gauge\ng 1\ng_total 2\n',
        families: [fam('g', 'gauge', [s('g', {}, 1)]), fam('g_total', 'untyped', [s('g_total', {}, 2)])],
      },
      {
        what: 'a sample after another family in the family of the latest TYPE it matches',
        body: '# TYPE h histogram\nh_bucket{le="+Inf"} 1\nother 5\nh_count 1\n',
        families: [fam('h', 'histogram', [s('h_bucket', { le: '+Inf' }, 1), s('h_count', {}, 1)]), fam('other', 'untyped', [s('other', {}, 5)])],
      },
      {
        what: 'the later of two TYPE lines a sample name matches (Python: counter x, then gauge x_created)',
        body: '# TYPE x counter\nx_total 1\n# TYPE x_created gauge\nx_created 5\n',
        families: [fam('x', 'counter', [s('x_total', {}, 1)]), fam('x_created', 'gauge', [s('x_created', {}, 5)])],
      },
      {
        what: 'an untyped name seen again after another family in its first family',
        body: 'a 1\nb 2\na{x="y"} 3\n',
        families: [fam('a', 'untyped', [s('a', {}, 1), s('a', { x: 'y' }, 3)]), fam('b', 'untyped', [s('b', {}, 2)])],
      },
      {
        what: 'a family declared with HELP/TYPE and no samples',
        body: '# HELP idle Nothing yet.\n# TYPE idle gauge\n',
        families: [fam('idle', 'gauge', [], { help: 'Nothing yet.' })],
      },
      {
        what: 'HELP escapes \\\\ and \\n; other backslashes, \\" included, as written',
        body: '# HELP a x\\ny\\\\z \\"q\\" \\t\na 1\n',
        families: [fam('a', 'untyped', [s('a', {}, 1)], { help: 'x\ny\\z \\"q\\" \\t' })],
      },
      {
        what: 'an empty HELP as no help',
        body: '# HELP a\n# TYPE a gauge\na 1\n',
        families: [fam('a', 'gauge', [s('a', {}, 1)])],
      },
      {
        what: 'label value escapes \\\\, \\" and \\n; an unknown escape as written',
        body: 'a{p="C:\\\\DIR",q="say \\"hi\\"",n="1\\n2",t="\\t"} 1\n',
        families: [fam('a', 'untyped', [s('a', { p: 'C:\\DIR', q: 'say "hi"', n: '1\n2', t: '\\t' }, 1)])],
      },
      {
        what: 'UTF-8, "#", "}", "," and "=" inside label values',
        body: 'a{v="ünï 😀 #}{,= x"} 1\n',
        families: [fam('a', 'untyped', [s('a', { v: 'ünï 😀 #}{,= x' }, 1)])],
      },
      {
        what: 'empty braces, a trailing comma, and blanks/tabs between tokens',
        body: 'a{} 1\nb{x="1",} 2\n  c \t{ x = "1" ,\ty="2" }\t3\t 1000 \n',
        families: [
          fam('a', 'untyped', [s('a', {}, 1)]),
          fam('b', 'untyped', [s('b', { x: '1' }, 2)]),
          fam('c', 'untyped', [s('c', { x: '1', y: '2' }, 3, 1000)]),
        ],
      },
      {
        what: 'colons in metric names (recording rules)',
        body: 'job:requests:rate5m{job="a"} 0.5\n',
        families: [fam('job:requests:rate5m', 'untyped', [s('job:requests:rate5m', { job: 'a' }, 0.5)])],
      },
      {
        what: 'integer millisecond timestamps, negative ones too',
        body: 'a 1 1395066363000\nb +Inf -3982045\n',
        families: [fam('a', 'untyped', [s('a', {}, 1, 1395066363000)]), fam('b', 'untyped', [s('b', {}, Infinity, -3982045)])],
      },
      {
        what: 'timestamps beyond 2^53 up to the int64 limits (Go ParseInt), as the nearest double',
        body: 'a 1 9223372036854775807\nb 1 -9223372036854775808\nc 1 00000000000000000000001\n',
        families: [
          fam('a', 'untyped', [s('a', {}, 1, 9223372036854775807)]),
          fam('b', 'untyped', [s('b', {}, 1, -9223372036854775808)]),
          fam('c', 'untyped', [s('c', {}, 1, 1)]),
        ],
      },
      {
        what: 'empty label values (kept; dropping them is the consumer\'s choice)',
        body: 'a{x=""} 1\n',
        families: [fam('a', 'untyped', [s('a', { x: '' }, 1)])],
      },
    ]);
  });

  describe('reads values as Go strconv.ParseFloat does (without hex and underscores, as Prometheus 2.x)', () => {
    const values: ReadonlyArray<readonly [string, number]> = [
      ['0', 0],
      ['-0', -0],
      ['42', 42],
      ['+42', 42],
      ['-42', -42],
      ['007', 7],
      ['1.5', 1.5],
      ['.5', 0.5],
      ['5.', 5],
      ['1e3', 1000],
      ['1E-3', 0.001],
      ['1.7560473e+07', 17560473],
      ['1.458255915e9', 1458255915],
      ['0.1', 0.1],
      ['123456789012345678901234567890', 1.2345678901234568e29],
      ['0.000000000000000000000000001', 1e-27],
      ['9007199254740993', 9007199254740992],
      ['1.7976931348623157e308', 1.7976931348623157e308],
      ['1e400', Infinity],
      ['+Inf', Infinity],
      ['-Inf', -Infinity],
      ['Inf', Infinity],
      ['inf', Infinity],
      ['+infinity', Infinity],
      ['-Infinity', -Infinity],
      ['NaN', NaN],
      ['nan', NaN],
    ];
    for (const [text, value] of values) {
      it(`${text} as ${Object.is(value, -0) ? '-0' : String(value)}`, () => {
        const [family] = parseOk(`a ${text}\n`);
        expect(family?.samples[0]?.value).to.deep.equal(value);
      });
    }
    for (const text of ['0x10', '0x1p-2', '1_000', '-nan', '+NaN', 'infin', '1e', '1e+', '.', '+', '1.2.3', '--1', 'one', '1,5']) {
      it(`rejects ${text}`, () => {
        expect(parseErr(`a ${text}\n`).message).to.include(`invalid value "${text}"`);
      });
    }
  });

  describe('rejects', () => {
    errCases('prometheus', [
      { what: 'a body whose last line has no line feed (a truncated body)', body: 'a 1\nb 12', line: 2, message: 'does not end with a line feed' },
      { what: 'duplicate label names in one sample', body: 'a{x="1",y="2",x="3"} 1\n', line: 1, message: 'duplicate label name "x"' },
      { what: 'a sample without a value', body: 'a\n', line: 1, message: 'unexpected end of line after the metric name' },
      { what: 'a sample with labels and no value', body: 'a{x="1"}\n', line: 1, message: 'sample without a value' },
      { what: 'a float timestamp', body: 'a 1 1.5\n', line: 1, message: 'invalid timestamp "1.5"' },
      { what: 'a third token', body: 'a 1 2 3\n', line: 1, message: 'unexpected character "3" after the sample value' },
      { what: 'an exemplar (OpenMetrics only)', body: 'a 1 # {t="x"} 1\n', line: 1, message: 'exemplars exist only in OpenMetrics' },
      { what: 'an unterminated label value', body: 'ok 1\na{x="1} 1\n', line: 2, message: 'label value is not closed with a quote' },
      { what: 'an unquoted label value', body: 'a{x=1} 1\n', line: 1, message: 'where a quoted label value should start' },
      { what: 'a label without "="', body: 'a{x"1"} 1\n', line: 1, message: 'after a label name (expected "=")' },
      { what: 'a label name starting with a digit', body: 'a{1x="1"} 1\n', line: 1, message: 'where a label name should start' },
      { what: 'a label set that is not closed', body: 'a{x="1" 1\n', line: 1, message: 'expected "," or "}"' },
      { what: 'a metric name starting with a digit', body: '1a 1\n', line: 1, message: 'where a metric name should start' },
      { what: 'a sample without a metric name', body: '{a="b"} 1\n', line: 1, message: 'where a metric name should start' },
      { what: 'a dash in a metric name', body: 'my-metric 1\n', line: 1, message: 'unexpected character "-" after the metric name' },
      { what: 'an OpenMetrics-only type', body: '# TYPE a gaugehistogram\n', line: 1, message: 'unknown metric type "gaugehistogram"' },
      { what: 'a TYPE line without a type', body: '# TYPE a\n', line: 1, message: 'TYPE line without a type' },
      { what: 'a TYPE line with an extra token', body: '# TYPE a gauge x\n', line: 1, message: 'after the type in the TYPE line' },
      { what: 'a HELP line without a metric name', body: '# HELP\n', line: 1, message: 'HELP line without a metric name' },
      { what: 'an invalid metric name in a TYPE line', body: '# TYPE a-b gauge\n', line: 1, message: 'invalid metric name in TYPE line' },
      { what: 'CRLF line endings', body: 'a 1\r\n', line: 1, message: 'carriage return (CRLF line endings are not allowed)' },
      { what: 'CRLF after a TYPE line', body: '# TYPE a gauge\r\n', line: 1, message: 'carriage return' },
      // Go's ParseInt(…, 10, 64) refuses it, so Prometheus rejects the scrape too.
      { what: 'a timestamp beyond int64', body: 'a 1 9223372036854775808\n', line: 1, message: 'timestamp 9223372036854775808 is out of range' },
      { what: 'a timestamp far beyond int64', body: 'a 1 99999999999999999999\n', line: 1, message: 'timestamp 99999999999999999999 is out of range' },
    ]);
  });

  it('reports the line number and a quoted excerpt of the offending line', () => {
    const error = parseErr('# TYPE a gauge\na 1\n\na{x="1"} oops\n');
    expect(error).to.deep.equal({ line: 4, message: 'line 4: invalid value "oops": "a{x=\\"1\\"} oops"' });
  });

  it('cuts the excerpt of a huge line to 80 characters', () => {
    const error = parseErr(`a{x="${'y'.repeat(100_000)}"} oops\n`);
    expect(error.message.length).to.be.below(200);
    expect(error.message).to.match(/…$/);
  });
});

describe('exposition parse: OpenMetrics 1.0', () => {
  const om = (body: string): string => `${body}# EOF\n`;

  describe('accepts', () => {
    okCases('openmetrics', [
      { what: 'an empty exposition', body: '# EOF\n', families: [] },
      { what: '"# EOF" without the optional final line feed', body: 'a 1\n# EOF', families: [fam('a', 'unknown', [s('a', {}, 1)])] },
      {
        what: 'a counter with _total and _created, float-second timestamps as milliseconds',
        body: om('# TYPE foo counter\nfoo_total 17.0 1520879607.789\nfoo_created 1520430000.123 1520879607.789\n'),
        families: [fam('foo', 'counter', [s('foo_total', {}, 17, 1520879607789), s('foo_created', {}, 1520430000.123, 1520879607789)])],
      },
      {
        what: 'integer and negative timestamps',
        body: om('a 1 123\nb 1 -1.5\n'),
        families: [fam('a', 'unknown', [s('a', {}, 1, 123000)]), fam('b', 'unknown', [s('b', {}, 1, -1500)])],
      },
      {
        what: 'a large but valid timestamp (Prometheus takes any finite float), as the nearest double',
        body: om('# TYPE c counter\nc_total 5 12345678901234567890.123456789\nc_total{a="1"} 6 1e300 # {} 1 12345678901234567890.5\n'),
        families: [fam('c', 'counter', [s('c_total', {}, 5, 12345678901234567890123), s('c_total', { a: '1' }, 6, 1e303)])],
      },
      {
        what: 'exemplars, which are checked and dropped',
        body: om('# TYPE c counter\nc_total 3 # {trace_id="a\\"b"} 1 1520879607.789\nc_total{x="1"} 4 1000 # {} 0.5\n'),
        families: [fam('c', 'counter', [s('c_total', {}, 3), s('c_total', { x: '1' }, 4, 1000000)])],
      },
      {
        what: 'TYPE, UNIT and HELP, with HELP escapes \\\\, \\n and \\"',
        body: om('# TYPE foo_seconds counter\n# UNIT foo_seconds seconds\n# HELP foo_seconds Some text and \\n some \\" escaping\n'),
        families: [fam('foo_seconds', 'counter', [], { help: 'Some text and \n some " escaping', unit: 'seconds' })],
      },
      {
        what: 'an empty UNIT and an empty HELP as none',
        body: om('# TYPE a gauge\n# UNIT a \n# HELP a \na 1\n'),
        families: [fam('a', 'gauge', [s('a', {}, 1)])],
      },
      {
        what: 'a gaugehistogram with _bucket, _gcount, _gsum',
        body: om('# TYPE gh gaugehistogram\ngh_bucket{le="1"} 2\ngh_bucket{le="+Inf"} 3\ngh_gcount 3\ngh_gsum 1.5\n'),
        families: [fam('gh', 'gaugehistogram', [s('gh_bucket', { le: '1' }, 2), s('gh_bucket', { le: '+Inf' }, 3), s('gh_gcount', {}, 3), s('gh_gsum', {}, 1.5)])],
      },
      {
        what: 'a histogram with _created',
        body: om('# TYPE h histogram\nh_bucket{le="+Inf"} 1\nh_count 1\nh_sum 2\nh_created 1700000000.5\n'),
        families: [fam('h', 'histogram', [s('h_bucket', { le: '+Inf' }, 1), s('h_count', {}, 1), s('h_sum', {}, 2), s('h_created', {}, 1700000000.5)])],
      },
      {
        what: 'a summary with _created',
        body: om('# TYPE q summary\nq{quantile="0.9"} 1\nq_count 2\nq_sum 3\nq_created 4\n'),
        families: [fam('q', 'summary', [s('q', { quantile: '0.9' }, 1), s('q_count', {}, 2), s('q_sum', {}, 3), s('q_created', {}, 4)])],
      },
      {
        what: 'info and stateset',
        body: om('# TYPE build info\nbuild_info{version="1"} 1\n# TYPE st stateset\nst{st="a"} 1\nst{st="b"} 0\n'),
        families: [
          fam('build', 'info', [s('build_info', { version: '1' }, 1)]),
          fam('st', 'stateset', [s('st', { st: 'a' }, 1), s('st', { st: 'b' }, 0)]),
        ],
      },
      {
        what: 'unknown, declared and undeclared',
        body: om('# TYPE u unknown\nu 42.23\nv 1\n'),
        families: [fam('u', 'unknown', [s('u', {}, 42.23)]), fam('v', 'unknown', [s('v', {}, 1)])],
      },
      {
        what: 'a raw double quote in HELP (prom-client writes it unescaped)',
        body: om('# HELP a say "hi"\na 1\n'),
        families: [fam('a', 'unknown', [s('a', {}, 1)], { help: 'say "hi"' })],
      },
    ]);
  });

  describe('rejects', () => {
    errCases('openmetrics', [
      { what: 'a body without "# EOF" (truncated)', body: '# TYPE a gauge\na 1\n', line: 2, message: 'does not end with "# EOF"' },
      { what: 'an empty body', body: '', line: 1, message: 'does not end with "# EOF"' },
      { what: 'a sample cut before its line feed', body: 'a 1\na 2', line: 2, message: 'does not end with "# EOF"' },
      { what: 'content after "# EOF"', body: 'a 1\n# EOF\nb 2\n', line: 3, message: 'content after "# EOF"' },
      { what: 'an empty line after "# EOF"', body: '# EOF\n\n', line: 2, message: 'content after "# EOF"' },
      { what: 'an empty line', body: 'a 1\n\n# EOF\n', line: 2, message: 'empty line' },
      { what: 'a plain comment', body: '# hello\n# EOF\n', line: 1, message: 'must be "# HELP", "# TYPE", "# UNIT" or "# EOF"' },
      { what: '"#TYPE" without a space', body: '#TYPE a gauge\n# EOF\n', line: 1, message: 'must be "# HELP"' },
      { what: 'a leading blank', body: ' a 1\n# EOF\n', line: 1, message: 'where a metric name should start' },
      { what: 'the 0.0.4 type "untyped"', body: '# TYPE a untyped\n# EOF\n', line: 1, message: 'unknown metric type "untyped"' },
      { what: 'a unit that is not a suffix of the name', body: '# TYPE foo counter\n# UNIT foo seconds\n# EOF\n', line: 2, message: 'unit "seconds" is not a suffix' },
      { what: 'an infinite timestamp', body: 'a 1 Inf\n# EOF\n', line: 1, message: 'invalid timestamp "Inf"' },
      { what: 'a timestamp no float64 holds (Go ParseFloat: out of range)', body: 'a 1 1e400\n# EOF\n', line: 1, message: 'timestamp 1e400 is out of range' },
      { what: 'an exemplar without labels', body: 'a_total 1 # 1\n# EOF\n', line: 1, message: "where the exemplar's labels should start" },
      { what: 'an exemplar without a value', body: 'a_total 1 # {}\n# EOF\n', line: 1, message: "after the exemplar's labels" },
      { what: 'an exemplar with a bad value', body: 'a_total 1 # {} x\n# EOF\n', line: 1, message: 'invalid exemplar value "x"' },
      { what: 'an exemplar with an unterminated label', body: 'a_total 1 # {a="b} 1\n# EOF\n', line: 1, message: 'not closed with a quote' },
      { what: 'CRLF line endings', body: 'a 1\r\n# EOF\r\n', line: 1, message: 'carriage return' },
    ]);
  });
});

describe('exposition parse: what the specifications forbid but Prometheus accepts, with a warning', () => {
  const cases: ReadonlyArray<{ what: string; format: ExpositionFormat; body: string; families: MetricFamily[]; warnings: string[] }> = [
    {
      what: 'a family typed twice before its samples: the later TYPE decides, as in Prometheus',
      format: 'prometheus',
      body: '# TYPE x gauge\n# TYPE x counter\nx 1\n',
      families: [fam('x', 'gauge', []), fam('x', 'counter', [s('x', {}, 1)])],
      warnings: ['2 second TYPE line for "x" (first gauge): accepted as Prometheus does; a series written under both is a duplicate, the first is kept'],
    },
    {
      what: 'a family typed again after its samples',
      format: 'prometheus',
      body: '# TYPE x gauge\nx 1\n# TYPE x counter\nx 2\n',
      families: [fam('x', 'gauge', [s('x', {}, 1)]), fam('x', 'counter', [s('x', {}, 2)])],
      warnings: ['3 second TYPE line for "x" (first gauge): accepted as Prometheus does; a series written under both is a duplicate, the first is kept'],
    },
    {
      what: 'a second HELP line',
      format: 'prometheus',
      body: '# HELP a x\n# HELP a y\na 1\n',
      families: [fam('a', 'untyped', [], { help: 'x' }), fam('a', 'untyped', [s('a', {}, 1)], { help: 'y' })],
      warnings: ['2 second HELP line for "a": accepted as Prometheus does; a series written under both is a duplicate, the first is kept'],
    },
    {
      what: 'a second UNIT line (OpenMetrics)',
      format: 'openmetrics',
      body: '# UNIT a_s s\n# UNIT a_s s\n# EOF\n',
      families: [fam('a_s', 'unknown', [], { unit: 's' }), fam('a_s', 'unknown', [], { unit: 's' })],
      warnings: ['2 second UNIT line for "a_s": accepted as Prometheus does; a series written under both is a duplicate, the first is kept'],
    },
  ];
  for (const c of cases) {
    it(c.what, () => {
      const r = parse(c.body, { format: c.format });
      if (!r.ok) expect.fail(r.error.message);
      expect([r.families, r.warnings.map((w) => `${w.line} ${w.message}`)]).to.deep.equal([c.families, c.warnings]);
    });
  }

  it('a body that follows the specifications has no warnings', () => {
    const r = parse('# TYPE x counter\nx 1\n# TYPE y gauge\ny 2\n');
    expect(r.ok && r.warnings).to.deep.equal([]);
  });
});

describe('exposition parse: robustness', () => {
  it('returns an error, never throws, for a non-string body', () => {
    const r = parse(undefined as unknown as string);
    expect(r).to.deep.equal({ ok: false, error: { line: 0, message: 'body is not a string' } });
  });

  it('defaults to the Prometheus text format and says which format it used', () => {
    const r = parse('a 1\n');
    expect(r.ok && r.format).to.equal('prometheus');
    const o = parse('a 1\n# EOF\n', { format: 'openmetrics' });
    expect(o.ok && o.format).to.equal('openmetrics');
  });

  it('treats "# EOF" as a plain comment in the Prometheus text format', () => {
    expect(parseOk('a 1\n# EOF\n')).to.deep.equal([fam('a', 'untyped', [s('a', {}, 1)])]);
  });

  it('reuses the label set of the previous sample when it is equal (histogram _sum/_count)', () => {
    const [h] = parseOk('# TYPE h histogram\nh_bucket{m="GET",le="+Inf"} 1\nh_sum{m="GET"} 2\nh_count{m="GET"} 1\n');
    const [, sum, count] = h?.samples ?? [];
    expect(sum?.labels).to.equal(count?.labels);
    expect(sum?.labels).to.deep.equal([['m', 'GET']]);
  });
});
