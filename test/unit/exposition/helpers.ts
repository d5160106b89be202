/** Builders that keep the expected values in the exposition tests short and exact. */
import { readFileSync } from 'node:fs';
import { expect } from 'chai';
import { parse, type ParseOptions } from '../../../shared/exposition/parse.ts';
import type { MetricFamily, MetricType, ParseErrorInfo, Sample } from '../../../shared/exposition/types.ts';

/** A sample; labels in the order written. */
export function s(name: string, labels: Record<string, string>, value: number, timestampMs?: number): Sample {
  const sample = { name, labels: Object.entries(labels), value };
  return timestampMs === undefined ? sample : { ...sample, timestampMs };
}

export function fam(
  name: string,
  type: MetricType,
  samples: Sample[],
  meta: { help?: string; unit?: string } = {},
): MetricFamily {
  return { name, type, samples, ...meta };
}

/** Parses and fails the test with the parser's own message when the body is rejected. */
export function parseOk(text: string, options?: ParseOptions): readonly MetricFamily[] {
  const r = parse(text, options);
  if (!r.ok) expect.fail(`expected the body to parse, got ${r.error.message}`);
  return r.families;
}

export function parseErr(text: string, options?: ParseOptions): ParseErrorInfo {
  const r = parse(text, options);
  if (r.ok) expect.fail(`expected a parse error, got ${JSON.stringify(r.families).slice(0, 300)}`);
  return r.error;
}

export function fixture(name: string): string {
  return readFileSync(new URL(`../../fixtures/exposition/${name}`, import.meta.url), 'utf8');
}
