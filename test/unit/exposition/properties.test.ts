import { expect } from 'chai';
import fc from 'fast-check';
import { parse, SUFFIXES } from '../../../shared/exposition/parse.ts';
import { print } from '../../../shared/exposition/print.ts';
import type { ExpositionFormat, MetricFamily, MetricType, ParseResult, Sample } from '../../../shared/exposition/types.ts';
import { fixture } from './helpers.ts';

const TYPES: Record<ExpositionFormat, readonly MetricType[]> = {
  prometheus: ['counter', 'gauge', 'histogram', 'summary', 'untyped'],
  openmetrics: ['counter', 'gauge', 'histogram', 'gaugehistogram', 'summary', 'info', 'stateset', 'unknown'],
};

const labelName = fc.stringMatching(/^[a-zA-Z_][a-zA-Z0-9_]{0,8}$/);
/** Any text, control characters, quotes, backslashes and line feeds included. */
const anyText = fc.string({ unit: 'binary', maxLength: 16 });
const labels = fc.uniqueArray(fc.tuple(labelName, anyText), { selector: ([name]) => name, maxLength: 4 });
const value = fc.double(); // NaN, ±Infinity and -0 included
const timestamp = fc.option(fc.integer({ min: -1e13, max: 1e13 }), { nil: undefined });
/** HELP text: a blank right after the metric name separates tokens, so it cannot start one. */
const help = fc.option(
  anyText.filter((h) => h !== '' && h[0] !== ' ' && h[0] !== '\t'),
  { nil: undefined },
);

function families(format: ExpositionFormat): fc.Arbitrary<MetricFamily[]> {
  const family = fc.record({
    word: fc.stringMatching(/^[a-z][a-z0-9]{0,6}$/),
    unit: format === 'openmetrics' ? fc.option(fc.stringMatching(/^[a-z]{1,6}$/), { nil: undefined }) : fc.constant(undefined),
    type: fc.constantFrom(...TYPES[format]),
    help,
    samples: fc.array(fc.record({ suffix: fc.nat(), labels, value, timestamp }), { maxLength: 5 }),
  });
  return fc.array(family, { maxLength: 6 }).map((raw) =>
    raw.map((f, i) => {
      // A distinct `f<i>_` prefix keeps one family's sample names out of every other family.
      const name = `f${i}_${f.word}${f.unit === undefined ? '' : `_${f.unit}`}`;
      const suffixes = SUFFIXES[f.type];
      const samples = f.samples.map((x): Sample => {
        const sample = { name: name + (suffixes[x.suffix % suffixes.length] ?? ''), labels: x.labels, value: x.value };
        return x.timestamp === undefined ? sample : { ...sample, timestampMs: x.timestamp };
      });
      const out: { -readonly [K in keyof MetricFamily]: MetricFamily[K] } = { name, type: f.type, samples };
      if (f.help !== undefined) out.help = f.help;
      if (f.unit !== undefined) out.unit = f.unit;
      return out;
    }),
  );
}

/** Every result is ok, or an error with a line number and a short message that starts with it. */
function expectWellFormed(r: ParseResult): void {
  if (r.ok) {
    expect(r.families).to.be.an('array');
    return;
  }
  expect(r.error.line).to.be.a('number').and.to.be.at.least(0);
  expect(r.error.message).to.be.a('string');
  // The parser's catch-all turns a bug (an exception it did not mean to throw) into this answer so
  // that a scrape, not the sidecar, pays for it; on any input it is a failure of the parser.
  expect(r.error.message, 'a parser bug caught by the catch-all').to.not.match(/^internal parser error/);
  expect(r.error.message.length).to.be.below(300);
  if (r.error.line > 0) expect(r.error.message.startsWith(`line ${r.error.line}: `)).to.equal(true);
}

const FORMATS: readonly ExpositionFormat[] = ['prometheus', 'openmetrics'];
/** Built once: compiling `stringMatching` arbitraries on every run would dominate the test time. */
const FAMILIES: Record<ExpositionFormat, fc.Arbitrary<MetricFamily[]>> = {
  prometheus: families('prometheus'),
  openmetrics: families('openmetrics'),
};

describe('exposition parse: properties', () => {
  for (const format of FORMATS) {
    it(`print → parse gives back the same families (${format})`, () => {
      fc.assert(
        fc.property(FAMILIES[format], (fams) => {
          const text = print(fams, format);
          const r = parse(text, { format });
          if (!r.ok) throw new Error(`${r.error.message}\n${text}`);
          expect(r.families).to.deep.equal(fams);
          expect(parse(text, { format })).to.deep.equal(r); // pure: same input, same output
        }),
        { numRuns: 300 },
      );
    });
  }

  it('never throws on random text, and answers ok or a well-formed error', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 200 }), fc.constantFrom(...FORMATS), (text, format) => {
        expectWellFormed(parse(text, { format }));
      }),
      { numRuns: 1000 },
    );
  });

  it('never throws on random bytes decoded as UTF-8', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.constantFrom(...FORMATS), (bytes, format) => {
        expectWellFormed(parse(Buffer.from(bytes).toString('utf8'), { format }));
      }),
      { numRuns: 500 },
    );
  });

  it('never throws on random edits of valid bodies', () => {
    const edit = fc.record({
      at: fc.nat(),
      kind: fc.constantFrom('insert', 'delete', 'replace'),
      char: fc.constantFrom('\n', ' ', '\t', '"', '\\', '{', '}', ',', '=', '#', '\r', 'a', '1', '.', 'e', '+', '-', '\0', '😀', '_total'),
    });
    const body = fc.oneof(
      fc.constantFrom(...FORMATS).chain((format) => FAMILIES[format].map((f) => ({ text: print(f, format), format }))),
      fc.constantFrom(
        { text: fixture('prometheus-text-example.prom'), format: 'prometheus' as const },
        { text: fixture('python-client.om.txt'), format: 'openmetrics' as const },
        { text: fixture('openmetrics-exemplars.om.txt'), format: 'openmetrics' as const },
      ),
    );
    fc.assert(
      fc.property(body, fc.array(edit, { minLength: 1, maxLength: 6 }), ({ text, format }, edits) => {
        let mutated = text;
        for (const e of edits) {
          const at = mutated.length === 0 ? 0 : e.at % (mutated.length + 1);
          if (e.kind === 'insert') mutated = mutated.slice(0, at) + e.char + mutated.slice(at);
          else if (e.kind === 'delete') mutated = mutated.slice(0, at) + mutated.slice(at + 1);
          else mutated = mutated.slice(0, at) + e.char + mutated.slice(at + 1);
        }
        expectWellFormed(parse(mutated, { format }));
        expectWellFormed(parse(mutated, { format: format === 'openmetrics' ? 'prometheus' : 'openmetrics' }));
      }),
      { numRuns: 1000 },
    );
  });

  it('never throws even when reading its options throws (a bug-level failure is an error result)', () => {
    const hostile = new Proxy(
      {},
      {
        get() {
          throw new Error('boom');
        },
      },
    );
    expect(parse('a 1\n', hostile)).to.deep.equal({ ok: false, error: { line: 0, message: 'internal parser error: boom' } });
  });
});
