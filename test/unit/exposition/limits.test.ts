import { expect } from 'chai';
import client from 'prom-client';
import { parse } from '../../../shared/exposition/parse.ts';
import { DEFAULT_PARSE_LIMITS, type ExpositionFormat, type ParseLimits } from '../../../shared/exposition/types.ts';
import { fixture, parseErr, parseOk } from './helpers.ts';

describe('exposition parse: limits against bad targets', () => {
  interface LimitCase {
    readonly what: string;
    readonly limits: Partial<ParseLimits>;
    /** A body at the limit, accepted. */
    readonly atLimit: string;
    /** A body one past the limit, rejected with this line and message. */
    readonly overLimit: string;
    readonly line: number;
    readonly message: string;
  }
  const cases: readonly LimitCase[] = [
    {
      what: 'body size in bytes (maxBytes)',
      limits: { maxBytes: 8 },
      atLimit: 'abc 123\n',
      overLimit: 'abcd 123\n',
      line: 0,
      message: 'body has more than 8 bytes (limit maxBytes)',
    },
    {
      what: 'body size counts UTF-8 bytes, not characters (maxBytes)',
      limits: { maxBytes: 14 },
      atLimit: 'a{x="éé"} 1\n', // 12 characters, 14 bytes
      overLimit: 'a{x="ééé"} 1\n', // 13 characters, 16 bytes
      line: 0,
      message: 'body has 16 bytes, more than 14 (limit maxBytes)',
    },
    {
      what: 'samples in one body (maxSamples)',
      limits: { maxSamples: 2 },
      atLimit: '# TYPE a gauge\na 1\nb 2\n',
      overLimit: '# TYPE a gauge\na 1\nb 2\nc 3\n',
      line: 4,
      message: 'line 4: more than 2 samples (limit maxSamples): "c 3"',
    },
    {
      what: 'metric families in one body, those of metadata lines alone included (maxFamilies)',
      limits: { maxFamilies: 2 },
      atLimit: '# HELP a x\n# TYPE b gauge\n',
      overLimit: '# HELP a x\n# TYPE b gauge\nc 1\n',
      line: 3,
      message: 'line 3: more than 2 metric families (limit maxFamilies): "c 1"',
    },
    {
      what: 'label name length (maxLabelNameLength)',
      limits: { maxLabelNameLength: 3 },
      atLimit: 'a{abc="1"} 1\n',
      overLimit: 'a{x="1"} 1\na{abcd="1"} 1\n',
      line: 2,
      message: 'line 2: label name longer than 3 characters (limit maxLabelNameLength)',
    },
    {
      what: 'label value length, after unescaping (maxLabelValueLength)',
      limits: { maxLabelValueLength: 3 },
      atLimit: 'a{x="\\n\\\\\\""} 1\n',
      overLimit: 'a{x="abcd"} 1\n',
      line: 1,
      message: 'line 1: label value longer than 3 characters (limit maxLabelValueLength)',
    },
    {
      what: 'labels on one sample (maxLabelsPerSample)',
      limits: { maxLabelsPerSample: 2 },
      atLimit: 'a{x="1",y="2"} 1\n',
      overLimit: 'a{x="1",y="2",z="3"} 1\n',
      line: 1,
      message: 'line 1: more than 2 labels on one sample (limit maxLabelsPerSample)',
    },
  ];
  for (const c of cases) {
    it(c.what, () => {
      parseOk(c.atLimit, { limits: c.limits });
      const error = parseErr(c.overLimit, { limits: c.limits });
      expect(error.line).to.equal(c.line);
      expect(error.message).to.include(c.message);
    });
  }

  it('does not count exemplar labels against the sample limits', () => {
    const body = 'a_total{x="1"} 1 # {trace_id="0123456789",span_id="x"} 1\n# EOF\n';
    parseOk(body, { format: 'openmetrics', limits: { maxLabelsPerSample: 1, maxLabelNameLength: 1, maxLabelValueLength: 1 } });
  });

  it('has the defaults of DEFAULT_PARSE_LIMITS and ignores limits a JavaScript caller left undefined', () => {
    const limits = { maxSamples: undefined, maxBytes: Number.NaN } as unknown as Partial<ParseLimits>;
    const body = 'a 1\n'.repeat(DEFAULT_PARSE_LIMITS.maxSamples + 1);
    expect(parseErr(body, { limits }).message).to.include(`more than ${DEFAULT_PARSE_LIMITS.maxSamples} samples (limit maxSamples)`);
  });

  it('rejects a 20 MB body at once, before reading it', () => {
    // The first line is not a sample: had the parser read it, that would be the error. And the
    // message has no byte count: the length alone decided, without encoding the body.
    const body = 'not a sample\n' + `${'x'.repeat(1000)} 1\n`.repeat(20_000); // 20 MB
    const r = parse(body);
    expect(r).to.deep.equal({ ok: false, error: { line: 0, message: `body has more than ${16 * 1024 * 1024} bytes (limit maxBytes)` } });
  });

  it('parses a body just under the default size limit (16 MiB of samples) without failing', function () {
    this.timeout(20_000);
    const line = `m{a="${'v'.repeat(80)}"} 1\n`;
    const body = line.repeat(Math.floor((16 * 1024 * 1024) / line.length));
    const r = parse(body, { limits: { maxSamples: Number.MAX_SAFE_INTEGER } });
    expect(r.ok).to.equal(true);
  });
});

describe('exposition parse: truncated bodies', () => {
  async function promClientBody(om: boolean): Promise<string> {
    const registry = new client.Registry<client.RegistryContentType>();
    if (om) registry.setContentType(client.Registry.OPENMETRICS_CONTENT_TYPE);
    const c = new client.Counter({ name: 'items_total', help: 'Items.', labelNames: ['k'], registers: [registry] });
    c.inc({ k: 'a' }, 123);
    c.inc({ k: 'b' }, 4567);
    const h = new client.Histogram({ name: 'h_seconds', help: 'H.', buckets: [1, 10], registers: [registry] });
    h.observe(3);
    return registry.metrics();
  }

  const bodies: ReadonlyArray<readonly [string, ExpositionFormat, () => Promise<string>]> = [
    ['prom-client, text 0.0.4', 'prometheus', () => promClientBody(false)],
    ['prom-client, OpenMetrics', 'openmetrics', () => promClientBody(true)],
    ['the specification example, text 0.0.4', 'prometheus', async () => fixture('prometheus-text-example.prom')],
    ['prometheus_client, OpenMetrics', 'openmetrics', async () => fixture('python-client.om.txt')],
  ];

  for (const [what, format, load] of bodies) {
    it(`rejects every cut of ${what} that a parser can detect`, async () => {
      const body = await load();
      parseOk(body, { format });
      const eof = body.lastIndexOf('# EOF');
      for (let cut = 0; cut < body.length; cut++) {
        const prefix = body.slice(0, cut);
        const r = parse(prefix, { format });
        if (format === 'openmetrics') {
          // Only "# EOF" itself may lose its optional line feed.
          expect(r.ok, `cut at ${cut}`).to.equal(cut === eof + 5);
        } else {
          // Text 0.0.4 has no end marker: a cut at a line boundary cannot be told apart.
          const lastLine = prefix.slice(prefix.lastIndexOf('\n') + 1);
          if (lastLine.trim() !== '') {
            expect(r.ok, `cut at ${cut}`).to.equal(false);
            if (!r.ok) expect(r.error.message).to.include('does not end with a line feed (truncated?)');
          }
        }
      }
    });
  }
});
