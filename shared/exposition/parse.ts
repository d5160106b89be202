/**
 * Parser for the Prometheus text format 0.0.4 and OpenMetrics 1.0 text format.
 *
 * Specifications followed (cited below as [prom] and [om]):
 *   [prom] https://prometheus.io/docs/instrumenting/exposition_formats/ ("Text format details")
 *   [om]   https://github.com/OpenObservability/OpenMetrics/blob/main/specification/OpenMetrics.md (ABNF)
 * Where the specifications are silent or looser than the reference ingestor, Prometheus 2.x
 * (model/textparse: promparse.go, openmetricsparse.go) decides, because the job's metrics were
 * written to be scraped by it.
 *
 * The parser runs on every scrape of the sidecar (100 ms – 1 s), so it is a single pass over the
 * string with charCode comparisons and native `indexOf`/`startsWith`, no regular expressions and
 * no per-line substrings. Strings that repeat from one sample to the next (metric names, label
 * names and values, whole label sets) are reused instead of re-sliced, which keeps allocation
 * proportional to what actually changes.
 *
 * It is a pure function and never throws: every failure, including a bug in this file, comes back
 * as `{ ok: false, error }` for that scrape.
 */
import { Buffer } from 'node:buffer';
import {
  DEFAULT_PARSE_LIMITS,
  type ExpositionFormat,
  type Labels,
  type MetricFamily,
  type MetricType,
  type ParseLimits,
  type ParseResult,
  type ParseWarning,
  type Sample,
} from './types.ts';

export interface ParseOptions {
  /** Which grammar to apply; `prometheus` (text 0.0.4) when omitted, as Prometheus does without a content type. */
  readonly format?: ExpositionFormat;
  readonly limits?: Partial<ParseLimits>;
}

export function parse(text: string, options?: ParseOptions): ParseResult {
  try {
    const format: ExpositionFormat = options?.format === 'openmetrics' ? 'openmetrics' : 'prometheus';
    if (typeof text !== 'string') return failure(0, 'body is not a string');
    const limits = resolveLimits(options?.limits);
    const sizeError = checkSize(text, limits.maxBytes);
    if (sizeError !== undefined) return failure(0, sizeError);
    const scanner = new Scanner(text, format === 'openmetrics', limits);
    const families = scanner.run();
    return { ok: true, families, format, warnings: scanner.warnings };
  } catch (e) {
    if (e instanceof ParseFailure) return failure(e.line, e.message);
    // A bug must cost one scrape, never the sidecar.
    return failure(0, `internal parser error: ${e instanceof Error ? e.message : String(e)}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Limits and errors

const LIMIT_KEYS = [
  'maxBytes',
  'maxSamples',
  'maxFamilies',
  'maxLabelNameLength',
  'maxLabelValueLength',
  'maxLabelsPerSample',
] as const satisfies ReadonlyArray<keyof ParseLimits>;

function resolveLimits(partial: Partial<ParseLimits> | undefined): ParseLimits {
  const out: Record<keyof ParseLimits, number> = { ...DEFAULT_PARSE_LIMITS };
  if (partial === undefined || partial === null) return out;
  for (const key of LIMIT_KEYS) {
    const v: unknown = partial[key];
    // A JavaScript caller may pass `undefined` or garbage; that must not switch a limit off.
    if (typeof v === 'number' && v >= 0) out[key] = v;
  }
  return out;
}

/**
 * The size check costs O(1) for bodies clearly under or over the limit: a UTF-16 code unit
 * encodes to 1–3 UTF-8 bytes (a surrogate pair to 4 for 2 units).
 */
function checkSize(text: string, maxBytes: number): string | undefined {
  const units = text.length;
  if (units > maxBytes) return `body has more than ${maxBytes} bytes (limit maxBytes)`;
  if (units * 3 <= maxBytes) return undefined;
  const bytes = Buffer.byteLength(text, 'utf8');
  return bytes > maxBytes ? `body has ${bytes} bytes, more than ${maxBytes} (limit maxBytes)` : undefined;
}

class ParseFailure {
  constructor(
    readonly line: number,
    readonly message: string,
  ) {}
}

function failure(line: number, message: string): ParseResult {
  return { ok: false, error: { line, message } };
}

const EXCERPT_MAX = 80;
/** Most warnings kept for one body (the rest are alike and would only cost memory). */
const MAX_WARNINGS = 10;

// ---------------------------------------------------------------------------------------------
// Character classes

const C_TAB = 9;
const C_CR = 13;
const C_SPACE = 32;
const C_QUOTE = 34;
const C_HASH = 35;
const C_PLUS = 43;
const C_COMMA = 44;
const C_MINUS = 45;
const C_DOT = 46;
const C_0 = 48;
const C_9 = 57;
const C_EQ = 61;
const C_E_UPPER = 69;
const C_BACKSLASH = 92;
const C_E_LOWER = 101;
const C_N_LOWER = 110;
const C_LBRACE = 123;
const C_RBRACE = 125;

// Metric names: [a-zA-Z_:][a-zA-Z0-9_:]*; label names: [a-zA-Z_][a-zA-Z0-9_]* ([om] ABNF).
const NAME_START = 1;
const NAME_CHAR = 2;
const LABEL_START = 4;
const LABEL_CHAR = 8;
const CLASS = new Uint8Array(128);
for (let c = 0; c < 128; c++) {
  const alpha = (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95;
  const digit = c >= C_0 && c <= C_9;
  const colon = c === 58;
  CLASS[c] =
    (alpha || colon ? NAME_START : 0) |
    (alpha || colon || digit ? NAME_CHAR : 0) |
    (alpha ? LABEL_START : 0) |
    (alpha || digit ? LABEL_CHAR : 0);
}

function isClass(c: number, flag: number): boolean {
  return c < 128 && ((CLASS[c] ?? 0) & flag) !== 0;
}

// ---------------------------------------------------------------------------------------------
// Families and their sample-name suffixes

/**
 * Which sample names belong to a family of each type: `<family name><suffix>` ([om] "Suffixes",
 * [prom] "histogram and summary" conventions). Counters accept the bare name too, because text
 * 0.0.4 exposers (prom-client, Python) name the family `x_total` and the sample `x_total`.
 */
export const SUFFIXES: Readonly<Record<MetricType, readonly string[]>> = {
  counter: ['', '_total', '_created'],
  gauge: [''],
  histogram: ['_bucket', '_sum', '_count', '_created'],
  gaugehistogram: ['_bucket', '_gsum', '_gcount'],
  summary: ['', '_sum', '_count', '_created'],
  info: ['_info'],
  stateset: [''],
  untyped: [''],
  unknown: [''],
};

/** Every non-empty suffix, to find the family a sample could belong to by its name. */
const ALL_SUFFIXES: readonly string[] = [...new Set(Object.values(SUFFIXES).flat())].filter((s) => s !== '');

const PROM_TYPES: ReadonlySet<string> = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);
const OM_TYPES: ReadonlySet<string> = new Set([
  'counter',
  'gauge',
  'histogram',
  'gaugehistogram',
  'summary',
  'info',
  'stateset',
  'unknown',
]);

interface FamilyBuilder {
  readonly name: string;
  /** Position in declaration order: the latest declaration wins when a name matches several. */
  readonly index: number;
  type: MetricType;
  suffixes: readonly string[];
  help: string | undefined;
  unit: string | undefined;
  sawType: boolean;
  sawHelp: boolean;
  sawUnit: boolean;
  readonly samples: Sample[];
}

function belongs(family: FamilyBuilder, name: string): boolean {
  const base = family.name;
  if (name === base) return family.suffixes[0] === '';
  if (name.length <= base.length || !name.startsWith(base)) return false;
  for (const suffix of family.suffixes) {
    if (suffix !== '' && name.length === base.length + suffix.length && name.endsWith(suffix)) return true;
  }
  return false;
}

function finish(family: FamilyBuilder): MetricFamily {
  const out: { -readonly [K in keyof MetricFamily]: MetricFamily[K] } = {
    name: family.name,
    type: family.type,
    samples: family.samples,
  };
  if (family.help !== undefined) out.help = family.help;
  if (family.unit !== undefined) out.unit = family.unit;
  return out;
}

// ---------------------------------------------------------------------------------------------
// Numbers

/** 10^0 … 10^22 are exact doubles: one multiplication or division by them is correctly rounded. */
const POW10: readonly number[] = Array.from({ length: 23 }, (_, i) => Number(`1e${i}`));

/** Case-insensitive match of text[a, b) against a lower-case ASCII word. */
function equalsIgnoreCase(text: string, a: number, b: number, word: string): boolean {
  if (b - a !== word.length) return false;
  for (let i = 0; i < word.length; i++) {
    if ((text.charCodeAt(a + i) | 0x20) !== word.charCodeAt(i)) return false;
  }
  return true;
}

/**
 * Parses text[a, b) as a float the way Prometheus 2.x does: Go's strconv.ParseFloat without
 * hexadecimal forms and underscores ("Keep to pre-Go 1.13 float formats"), which is also [om]'s
 * `number`: `[+-]digits[.digits][e[+-]digits]`, `.5`, `5.`, case-insensitive `Inf`/`Infinity`
 * with an optional sign, and unsigned `NaN`. Returns undefined when the text is not such a number.
 */
function parseFloatToken(text: string, a: number, b: number, allowSpecial: boolean): number | undefined {
  let i = a;
  if (i >= b) return undefined;
  let c = text.charCodeAt(i);
  let negative = false;
  const signed = c === C_PLUS || c === C_MINUS;
  if (signed) {
    negative = c === C_MINUS;
    i++;
    if (i >= b) return undefined;
    c = text.charCodeAt(i);
  }
  if (!(c >= C_0 && c <= C_9) && c !== C_DOT) {
    if (!allowSpecial) return undefined;
    if (equalsIgnoreCase(text, i, b, 'inf') || equalsIgnoreCase(text, i, b, 'infinity')) {
      return negative ? -Infinity : Infinity;
    }
    if (!signed && equalsIgnoreCase(text, i, b, 'nan')) return NaN;
    return undefined;
  }
  let mantissa = 0;
  // At most 15 significant digits go into `mantissa`, so it stays an exact integer (< 2^53).
  let significant = 0; // digits accumulated into mantissa, leading zeros excluded
  let fraction = 0; // fractional digits accumulated
  let digits = 0;
  let exact = true;
  while (i < b && (c = text.charCodeAt(i)) >= C_0 && c <= C_9) {
    digits++;
    if (significant < 15) {
      if (mantissa !== 0 || c !== C_0) significant++;
      mantissa = mantissa * 10 + (c - C_0);
    } else {
      exact = false;
    }
    i++;
  }
  if (i < b && c === C_DOT) {
    i++;
    while (i < b && (c = text.charCodeAt(i)) >= C_0 && c <= C_9) {
      digits++;
      if (significant < 15) {
        if (mantissa !== 0 || c !== C_0) significant++;
        mantissa = mantissa * 10 + (c - C_0);
        fraction++;
      } else if (c !== C_0) {
        exact = false;
      }
      i++;
    }
  }
  if (digits === 0) return undefined;
  let exponent = 0;
  if (i < b && (c === C_E_LOWER || c === C_E_UPPER)) {
    i++;
    let expNegative = false;
    if (i < b) {
      c = text.charCodeAt(i);
      if (c === C_PLUS || c === C_MINUS) {
        expNegative = c === C_MINUS;
        i++;
      }
    }
    let expDigits = 0;
    while (i < b && (c = text.charCodeAt(i)) >= C_0 && c <= C_9) {
      if (exponent < 100_000) exponent = exponent * 10 + (c - C_0);
      expDigits++;
      i++;
    }
    if (expDigits === 0) return undefined;
    if (expNegative) exponent = -exponent;
  }
  if (i !== b) return undefined;
  if (exact) {
    const e = exponent - fraction;
    let value: number | undefined;
    if (e === 0) value = mantissa;
    else if (e > 0 && e <= 22) value = mantissa * (POW10[e] ?? NaN);
    else if (e < 0 && e >= -22) value = mantissa / (POW10[-e] ?? NaN);
    if (value !== undefined) return negative ? -value : value;
  }
  // Validated above; the engine's own conversion is correctly rounded for the rest.
  return Number(text.slice(a, b));
}

// ---------------------------------------------------------------------------------------------
// The scanner

const EMPTY_LABELS: Labels = Object.freeze([]) as Labels;

type MutableLabels = Array<readonly [string, string]>;

class Scanner {
  private readonly len: number;
  private pos = 0;
  private line = 0;
  private lineStart = 0;
  /** Index of the line feed ending the current line, or `len` when the body ends without one. */
  private lineEnd = 0;
  /** Cached position of the next backslash at or after some earlier position (-1: none left). */
  private nextBackslash = -2;

  private readonly families: FamilyBuilder[] = [];
  /** The latest family declared under each name, to place samples that come after another family. */
  private readonly byName = new Map<string, FamilyBuilder>();
  private current: FamilyBuilder | undefined;
  private sampleCount = 0;

  private lastName = '';
  private lastLabels: Labels = EMPTY_LABELS;
  private lastFamily: FamilyBuilder | undefined;
  /** Labels of the sample being read; copied out at their exact size (a `push`-grown array keeps spare slots). */
  private readonly scratch: MutableLabels = [];
  private sawEof = false;
  /** What Prometheus accepts against the specifications; at most `MAX_WARNINGS`. */
  readonly warnings: ParseWarning[] = [];

  constructor(
    private readonly text: string,
    private readonly om: boolean,
    private readonly limits: ParseLimits,
  ) {
    this.len = text.length;
  }

  run(): MetricFamily[] {
    const text = this.text;
    const len = this.len;
    while (this.pos < len) {
      this.line++;
      this.lineStart = this.pos;
      const lf = text.indexOf('\n', this.pos);
      this.lineEnd = lf === -1 ? len : lf;
      if (this.om) this.omLine(lf === -1);
      else this.promLine(lf === -1);
      this.pos = this.lineEnd + 1;
    }
    if (this.om && !this.sawEof) {
      // [om]: "Expositions MUST end with EOF"; a body cut short must not pass as a smaller one.
      this.line = Math.max(this.line, 1);
      this.lineStart = this.lineEnd = len;
      throw new ParseFailure(this.line, `line ${this.line}: body does not end with "# EOF" (truncated?)`);
    }
    return this.families.map(finish);
  }

  // -- lines ------------------------------------------------------------------------------------

  private promLine(unterminated: boolean): void {
    // [prom]: leading whitespace is ignored, empty lines are ignored.
    this.skipBlanks();
    if (this.pos >= this.lineEnd) return;
    if (unterminated) {
      // [prom]: "The last line must end with a line-feed character." Without it a body cut
      // mid-number (`x_total 12` of `x_total 123`) would pass as a counter reset.
      this.fail('body does not end with a line feed (truncated?)');
    }
    if (this.text.charCodeAt(this.pos) === C_HASH) this.promComment();
    else this.sample();
  }

  private omLine(unterminated: boolean): void {
    const text = this.text;
    if (this.pos === this.lineEnd) this.fail('empty line (not allowed in OpenMetrics)');
    if (text.charCodeAt(this.pos) === C_HASH) {
      this.omComment();
      return;
    }
    if (unterminated) this.fail('body does not end with "# EOF" (truncated?)');
    this.sample();
  }

  /** `# HELP name text`, `# TYPE name type`; any other comment is ignored ([prom]). */
  private promComment(): void {
    this.pos++; // '#'
    this.skipBlanks();
    const wordStart = this.pos;
    const keyword = this.keywordAt(wordStart);
    if (keyword === undefined) return; // a plain comment
    this.pos = wordStart + 4;
    if (!this.skipBlanks()) {
      if (this.pos >= this.lineEnd) this.fail(`${keyword} line without a metric name`);
      return; // `# HELPER …` is a plain comment
    }
    this.metadata(keyword);
  }

  /** [om]: only `# HELP`, `# TYPE`, `# UNIT` and `# EOF` may start with '#'. */
  private omComment(): void {
    const text = this.text;
    if (this.lineEnd - this.pos === 5 && text.startsWith('# EOF', this.pos)) {
      this.sawEof = true;
      this.pos = this.lineEnd;
      // [om]: `exposition = metricset HASH SP eof [ LF ]` — only one optional line feed follows.
      if (this.lineEnd + 1 < this.len) {
        this.line++;
        this.lineStart = this.lineEnd + 1;
        const lf = text.indexOf('\n', this.lineStart);
        this.lineEnd = lf === -1 ? this.len : lf;
        this.fail('content after "# EOF"');
      }
      return;
    }
    if (this.lineEnd === this.len) this.fail('body does not end with "# EOF" (truncated?)');
    if (text.charCodeAt(this.pos + 1) !== C_SPACE) this.fail('a line starting with "#" must be "# HELP", "# TYPE", "# UNIT" or "# EOF"');
    const keyword = this.keywordAt(this.pos + 2);
    this.pos += 6;
    if (keyword === undefined || !this.skipBlanks()) {
      this.fail('a line starting with "#" must be "# HELP", "# TYPE", "# UNIT" or "# EOF"');
    }
    this.metadata(keyword);
  }

  private keywordAt(at: number): 'HELP' | 'TYPE' | 'UNIT' | undefined {
    const text = this.text;
    if (text.startsWith('HELP', at)) return 'HELP';
    if (text.startsWith('TYPE', at)) return 'TYPE';
    if (this.om && text.startsWith('UNIT', at)) return 'UNIT';
    return undefined;
  }

  private metadata(keyword: 'HELP' | 'TYPE' | 'UNIT'): void {
    const text = this.text;
    const nameStart = this.pos;
    const nameEnd = this.scanMetricName();
    if (nameEnd === nameStart) this.fail(`${keyword} line without a valid metric name`);
    const name = text.slice(nameStart, nameEnd);
    const hasBlank = this.skipBlanks();
    if (!hasBlank && this.pos < this.lineEnd) this.fail(`invalid metric name in ${keyword} line`);

    const family = this.familyForMetadata(name, keyword);
    if (keyword === 'HELP') {
      const help = this.unescapeToLineEnd(this.pos);
      // [om]: an empty HELP "MUST be treated as if no metadata line for the MetricFamily existed".
      family.help = help === '' ? undefined : help;
      family.sawHelp = true;
    } else if (keyword === 'TYPE') {
      const typeStart = this.pos;
      while (this.pos < this.lineEnd && !isBlank(text.charCodeAt(this.pos))) this.pos++;
      const word = text.slice(typeStart, this.pos);
      this.skipBlanks();
      if (this.pos < this.lineEnd) this.unexpected('after the type in the TYPE line');
      const allowed = this.om ? OM_TYPES : PROM_TYPES;
      if (word.endsWith('\r')) this.fail('carriage return (CRLF line endings are not allowed)');
      if (!allowed.has(word)) {
        this.fail(
          word === '' ? 'TYPE line without a type' : `unknown metric type "${word.slice(0, 20)}" (allowed: ${[...allowed].join(', ')})`,
        );
      }
      family.type = word as MetricType;
      family.suffixes = SUFFIXES[family.type];
      family.sawType = true;
    } else {
      const unitStart = this.pos;
      while (this.pos < this.lineEnd && isClass(text.charCodeAt(this.pos), NAME_CHAR)) this.pos++;
      const unit = text.slice(unitStart, this.pos);
      if (this.pos < this.lineEnd) this.unexpected('in the unit of the UNIT line');
      // [om] "Unit": "If non-empty, it MUST be a suffix of the MetricFamily name separated by an underscore."
      if (unit !== '' && !name.endsWith(`_${unit}`)) this.fail(`unit "${unit}" is not a suffix of the metric name "${name}"`);
      family.unit = unit === '' ? undefined : unit;
      family.sawUnit = true;
    }
  }

  /**
   * Metadata lines come before a family's samples ([prom], [om]). A line for the family being
   * declared completes it; one for another name, or after samples, starts a new family.
   * A second line of the same kind for a name already declared is forbidden ([prom] "Only one
   * TYPE line may exist for the same metric name", [om] "MUST NOT be more than one of each type
   * of metadata line"), but Prometheus's parsers (model/textparse) keep no record of earlier
   * metadata and accept it: it starts a new family (so the later TYPE decides the samples that
   * follow, as Prometheus's metadata cache keeps the latest) and is reported as a warning.
   */
  private familyForMetadata(name: string, keyword: 'HELP' | 'TYPE' | 'UNIT'): FamilyBuilder {
    const cur = this.current;
    const earlier = this.byName.get(name);
    if (cur !== undefined && cur === earlier && cur.samples.length === 0) {
      const seen = keyword === 'HELP' ? cur.sawHelp : keyword === 'TYPE' ? cur.sawType : cur.sawUnit;
      if (!seen) return cur;
    }
    if (earlier !== undefined && (keyword === 'HELP' ? earlier.sawHelp : keyword === 'TYPE' ? earlier.sawType : earlier.sawUnit)) {
      this.warn(
        `second ${keyword} line for "${name}"` +
          (keyword === 'TYPE' ? ` (first ${earlier.type})` : '') +
          ': accepted as Prometheus does; a series written under both is a duplicate, the first is kept',
      );
    }
    return this.newFamily(name);
  }

  private newFamily(name: string): FamilyBuilder {
    if (this.families.length >= this.limits.maxFamilies) {
      this.fail(`more than ${this.limits.maxFamilies} metric families (limit maxFamilies)`);
    }
    const type: MetricType = this.om ? 'unknown' : 'untyped';
    const family: FamilyBuilder = {
      name,
      index: this.families.length,
      type,
      suffixes: SUFFIXES[type],
      help: undefined,
      unit: undefined,
      sawType: false,
      sawHelp: false,
      sawUnit: false,
      samples: [],
    };
    this.families.push(family);
    this.byName.set(name, family);
    this.current = family;
    return family;
  }

  /**
   * A sample belongs to the family being declared when its name is that family's name plus one
   * of the type's suffixes; otherwise to the latest family declared under a name it matches that
   * way (as Prometheus looks metadata up by name); otherwise it starts an untyped family.
   */
  private familyForSample(name: string): FamilyBuilder {
    const cur = this.current;
    if (cur !== undefined && belongs(cur, name)) return cur;
    let best: FamilyBuilder | undefined;
    let bestIndex = -1;
    const exact = this.byName.get(name);
    if (exact !== undefined && exact.suffixes.includes('')) {
      best = exact;
      bestIndex = exact.index;
    }
    for (const suffix of ALL_SUFFIXES) {
      if (name.length <= suffix.length || !name.endsWith(suffix)) continue;
      const candidate = this.byName.get(name.slice(0, name.length - suffix.length));
      if (candidate === undefined || !candidate.suffixes.includes(suffix)) continue;
      if (candidate.index > bestIndex) {
        best = candidate;
        bestIndex = candidate.index;
      }
    }
    if (best !== undefined) {
      this.current = best;
      return best;
    }
    return this.newFamily(name);
  }

  // -- samples ----------------------------------------------------------------------------------

  /** `name [labels] value [timestamp] [exemplar]` ([prom] EBNF, [om] `sample`). */
  private sample(): void {
    const text = this.text;
    const nameStart = this.pos;
    const nameEnd = this.scanMetricName();
    if (nameEnd === nameStart) this.unexpected('where a metric name should start');
    const nameLength = nameEnd - nameStart;
    const lastName = this.lastName;
    const sameName = nameLength === lastName.length && text.startsWith(lastName, nameStart);
    const name = sameName ? lastName : text.slice(nameStart, nameEnd);

    this.skipBlanks();
    let labels = EMPTY_LABELS;
    if (this.pos < this.lineEnd && text.charCodeAt(this.pos) === C_LBRACE) {
      labels = this.labels(true);
      this.skipBlanks();
    }
    const valueStart = this.pos;
    if (valueStart === nameEnd) this.unexpected('after the metric name');
    const valueEnd = this.scanToken();
    if (valueEnd === valueStart) this.fail('sample without a value');
    const value = parseFloatToken(text, valueStart, valueEnd, true);
    if (value === undefined) this.invalidToken('value', valueStart, valueEnd);

    let timestampMs: number | undefined;
    if (this.skipBlanks() && this.pos < this.lineEnd && text.charCodeAt(this.pos) !== C_HASH) {
      const tsStart = this.pos;
      const tsEnd = this.scanToken();
      timestampMs = this.om ? this.omTimestamp(tsStart, tsEnd) : this.promTimestamp(tsStart, tsEnd);
      this.skipBlanks();
    }
    if (this.pos < this.lineEnd) {
      if (text.charCodeAt(this.pos) === C_HASH && this.om) this.exemplar();
      else if (text.charCodeAt(this.pos) === C_HASH) this.fail('"#" after a sample (exemplars exist only in OpenMetrics)');
      else this.unexpected('after the sample value');
    }

    if (++this.sampleCount > this.limits.maxSamples) {
      this.fail(`more than ${this.limits.maxSamples} samples (limit maxSamples)`);
    }
    // Same name as the previous sample and no metadata line since: same family.
    const family = sameName && this.current !== undefined && this.current === this.lastFamily ? this.current : this.familyForSample(name);
    this.lastName = name;
    this.lastLabels = labels;
    this.lastFamily = family;
    family.samples.push(
      timestampMs === undefined ? { name, labels, value: value as number } : { name, labels, value: value as number, timestampMs },
    );
  }

  /** [prom]: "timestamp an int64 (milliseconds since epoch)", Go's strconv.ParseInt. */
  private promTimestamp(a: number, b: number): number {
    const text = this.text;
    let i = a;
    const c0 = text.charCodeAt(i);
    if (c0 === C_PLUS || c0 === C_MINUS) i++;
    if (i === b) this.invalidToken('timestamp', a, b);
    for (; i < b; i++) {
      const c = text.charCodeAt(i);
      if (c < C_0 || c > C_9) this.invalidToken('timestamp', a, b);
    }
    // Go's ParseInt(…, 10, 64) range: |t| ≤ 9223372036854775807 (…808 when negative). The value
    // beyond 2^53 is the nearest double; the sidecar never uses it.
    if (!fitsInt64(text, a, b)) this.fail(`timestamp ${text.slice(a, Math.min(b, a + 30))} is out of range`);
    return Number(text.slice(a, b));
  }

  /**
   * [om]: timestamps are Unix seconds as a `realnumber`; the data model keeps milliseconds.
   * Rounded to the nearest millisecond: `1520879607.789` is 1520879607789 although the product
   * in binary floating point is a hair below it.
   */
  private omTimestamp(a: number, b: number): number {
    const seconds = parseFloatToken(this.text, a, b, false);
    if (seconds === undefined) this.invalidToken('timestamp', a, b);
    // Prometheus (openmetricsparse.go) takes any finite float ("12345678901234567890.123456789"
    // too) and only refuses one Go's ParseFloat cannot hold (1e400): so does this. Beyond 2^53 ms
    // the value is the nearest double, which no consumer here uses.
    const ms = Math.round((seconds as number) * 1000);
    if (!Number.isFinite(ms)) this.fail(`timestamp ${this.text.slice(a, Math.min(b, a + 30))} is out of range`);
    return ms;
  }

  /** [om] `exemplar = SP HASH SP labels SP number [SP timestamp]`: checked, then dropped. */
  private exemplar(): void {
    const text = this.text;
    this.pos++; // '#'
    this.skipBlanks();
    if (this.pos >= this.lineEnd || text.charCodeAt(this.pos) !== C_LBRACE) this.unexpected('where the exemplar\'s labels should start');
    this.labels(false);
    if (!this.skipBlanks()) this.unexpected('after the exemplar\'s labels');
    const valueStart = this.pos;
    const valueEnd = this.scanToken();
    if (parseFloatToken(text, valueStart, valueEnd, true) === undefined) this.invalidToken('exemplar value', valueStart, valueEnd);
    if (this.skipBlanks() && this.pos < this.lineEnd) {
      const tsStart = this.pos;
      const tsEnd = this.scanToken();
      this.omTimestamp(tsStart, tsEnd);
      this.skipBlanks();
    }
    if (this.pos < this.lineEnd) this.unexpected('after the exemplar');
  }

  /**
   * `{name="value",...}` with an optional trailing comma ([prom] EBNF) and blanks between tokens
   * (as Go's text parser allows). With `keep` false (exemplars) the labels are only checked.
   * Names and values equal to the previous sample's label at the same position are reused, and
   * so is its whole label set when nothing differs (`_sum` and `_count` after `_bucket`s).
   */
  private labels(keep: boolean): Labels {
    const text = this.text;
    const limits = this.limits;
    const prev = this.lastLabels;
    const out = this.scratch;
    let reusable = keep;
    let count = 0;
    this.pos++; // '{'
    for (;;) {
      this.skipBlanks();
      if (this.pos >= this.lineEnd) this.fail('label set is not closed with "}"');
      if (text.charCodeAt(this.pos) === C_RBRACE) {
        this.pos++;
        break;
      }
      const nameStart = this.pos;
      if (!isClass(text.charCodeAt(nameStart), LABEL_START)) this.unexpected('where a label name should start');
      let p = nameStart + 1;
      while (p < this.lineEnd && isClass(text.charCodeAt(p), LABEL_CHAR)) p++;
      const nameEnd = p;
      this.pos = p;
      if (keep && nameEnd - nameStart > limits.maxLabelNameLength) {
        this.fail(`label name longer than ${limits.maxLabelNameLength} characters (limit maxLabelNameLength)`);
      }
      this.skipBlanks();
      if (this.pos >= this.lineEnd || text.charCodeAt(this.pos) !== C_EQ) this.unexpected('after a label name (expected "=")');
      this.pos++;
      this.skipBlanks();
      if (this.pos >= this.lineEnd || text.charCodeAt(this.pos) !== C_QUOTE) this.unexpected('where a quoted label value should start');
      const valueStart = this.pos + 1;
      const close = text.indexOf('"', valueStart);
      if (close === -1 || close >= this.lineEnd) this.fail('label value is not closed with a quote');
      const escaped = this.backslashFrom(valueStart) < close;

      if (!keep) {
        this.pos = escaped ? this.skipEscapedValue(valueStart) : close + 1;
      } else {
        const index = count;
        const prevPair = index < prev.length ? prev[index] : undefined;
        let name: string;
        if (prevPair !== undefined && prevPair[0].length === nameEnd - nameStart && text.startsWith(prevPair[0], nameStart)) {
          name = prevPair[0];
        } else {
          name = text.slice(nameStart, nameEnd);
        }
        let value: string;
        if (escaped) {
          value = this.unescapeLabelValue(valueStart);
        } else {
          const valueLength = close - valueStart;
          if (prevPair !== undefined && prevPair[1].length === valueLength && text.startsWith(prevPair[1], valueStart)) {
            value = prevPair[1];
          } else {
            value = text.slice(valueStart, close);
          }
          this.pos = close + 1;
        }
        if (value.length > limits.maxLabelValueLength) {
          this.fail(`label value longer than ${limits.maxLabelValueLength} characters (limit maxLabelValueLength)`);
        }
        if (count >= limits.maxLabelsPerSample) {
          this.fail(`more than ${limits.maxLabelsPerSample} labels on one sample (limit maxLabelsPerSample)`);
        }
        for (let j = 0; j < count; j++) {
          // [om] "Label names MUST be unique within a LabelSet."
          if ((out[j] as readonly [string, string])[0] === name) this.fail(`duplicate label name "${name}"`);
        }
        if (prevPair !== undefined && prevPair[0] === name && prevPair[1] === value) {
          out[count] = prevPair;
        } else {
          out[count] = [name, value];
          reusable = false;
        }
      }
      count++;
      this.skipBlanks();
      if (this.pos >= this.lineEnd) this.fail('label set is not closed with "}"');
      const c = text.charCodeAt(this.pos);
      if (c === C_COMMA) {
        this.pos++;
      } else if (c === C_RBRACE) {
        this.pos++;
        break;
      } else {
        this.unexpected('after a label value (expected "," or "}")');
      }
    }
    if (!keep || count === 0) return EMPTY_LABELS;
    if (reusable && count === prev.length) return prev;
    return out.slice(0, count);
  }

  /**
   * Label values: `\\`, `\"` and `\n` are escapes ([prom], [om]); a backslash before any other
   * character is kept as written, as Prometheus does and as [om] allows (`BS normal-char`).
   */
  private unescapeLabelValue(start: number): string {
    const text = this.text;
    const end = this.lineEnd;
    let out = '';
    let chunk = start;
    let i = start;
    while (i < end) {
      const c = text.charCodeAt(i);
      if (c === C_QUOTE) {
        this.pos = i + 1;
        return out + text.slice(chunk, i);
      }
      if (c === C_BACKSLASH) {
        if (i + 1 >= end) break;
        const next = text.charCodeAt(i + 1);
        if (next === C_N_LOWER) out += text.slice(chunk, i) + '\n';
        else if (next === C_BACKSLASH || next === C_QUOTE) out += text.slice(chunk, i) + String.fromCharCode(next);
        else out += text.slice(chunk, i + 2);
        i += 2;
        chunk = i;
        continue;
      }
      i++;
    }
    this.fail('label value is not closed with a quote');
  }

  private skipEscapedValue(start: number): number {
    const text = this.text;
    for (let i = start; i < this.lineEnd; i++) {
      const c = text.charCodeAt(i);
      if (c === C_QUOTE) return i + 1;
      if (c === C_BACKSLASH) i++;
    }
    this.fail('label value is not closed with a quote');
  }

  /**
   * HELP text to the end of the line. [prom]: only `\\` and `\n` are escapes; [om]: the
   * `escaped-string` escapes, `\"` too. Other backslashes stay as written.
   */
  private unescapeToLineEnd(start: number): string {
    const text = this.text;
    const end = this.lineEnd;
    this.pos = end;
    if (this.backslashFrom(start) >= end) return text.slice(start, end);
    let out = '';
    let chunk = start;
    let i = start;
    while (i < end) {
      if (text.charCodeAt(i) !== C_BACKSLASH || i + 1 >= end) {
        i++;
        continue;
      }
      const next = text.charCodeAt(i + 1);
      if (next === C_N_LOWER) out += text.slice(chunk, i) + '\n';
      else if (next === C_BACKSLASH || (this.om && next === C_QUOTE)) out += text.slice(chunk, i) + String.fromCharCode(next);
      else out += text.slice(chunk, i + 2);
      i += 2;
      chunk = i;
    }
    return out + text.slice(chunk, end);
  }

  // -- tokens -----------------------------------------------------------------------------------

  /** Skips blanks and tabs ([prom]: tokens are separated by "any number of blanks and/or tabs"). */
  private skipBlanks(): boolean {
    const text = this.text;
    const start = this.pos;
    let p = start;
    while (p < this.lineEnd) {
      const c = text.charCodeAt(p);
      if (c !== C_SPACE && c !== C_TAB) break;
      p++;
    }
    this.pos = p;
    return p > start;
  }

  private scanMetricName(): number {
    const text = this.text;
    let p = this.pos;
    if (p < this.lineEnd && isClass(text.charCodeAt(p), NAME_START)) {
      p++;
      while (p < this.lineEnd && isClass(text.charCodeAt(p), NAME_CHAR)) p++;
    }
    this.pos = p;
    return p;
  }

  /** A value or timestamp: everything up to the next blank or the end of the line. */
  private scanToken(): number {
    const text = this.text;
    let p = this.pos;
    while (p < this.lineEnd && !isBlank(text.charCodeAt(p))) p++;
    this.pos = p;
    return p;
  }

  /** Position of the next backslash at or after `from` (`Infinity` when none), amortized O(1). */
  private backslashFrom(from: number): number {
    let next = this.nextBackslash;
    if (next === -1) return Infinity;
    if (next < from) {
      next = this.text.indexOf('\\', from);
      this.nextBackslash = next;
      if (next === -1) return Infinity;
    }
    return next;
  }

  // -- errors -----------------------------------------------------------------------------------

  private warn(reason: string): void {
    if (this.warnings.length < MAX_WARNINGS) this.warnings.push({ line: this.line, message: reason });
  }

  private fail(reason: string): never {
    const text = this.text;
    const start = this.lineStart;
    const end = Math.min(this.lineEnd, this.len);
    const cut = end - start > EXCERPT_MAX;
    const excerpt = JSON.stringify(text.slice(start, cut ? start + EXCERPT_MAX : end)) + (cut ? '…' : '');
    throw new ParseFailure(this.line, `line ${this.line}: ${reason}: ${excerpt}`);
  }

  private unexpected(where: string): never {
    const c = this.pos < this.lineEnd ? this.text.charCodeAt(this.pos) : -1;
    if (c === C_CR || (c === -1 && this.text.charCodeAt(this.lineEnd - 1) === C_CR)) {
      this.fail('carriage return (CRLF line endings are not allowed)');
    }
    const what = c === -1 ? 'end of line' : `character ${JSON.stringify(String.fromCharCode(c))}`;
    this.fail(`unexpected ${what} ${where}`);
  }

  private invalidToken(what: string, a: number, b: number): never {
    if (b > a && this.text.charCodeAt(b - 1) === C_CR) this.fail('carriage return (CRLF line endings are not allowed)');
    const token = this.text.slice(a, Math.min(b, a + 30));
    this.fail(`invalid ${what} ${JSON.stringify(token)}${b - a > 30 ? '…' : ''}`);
  }
}

/** Whether the decimal integer text[a, b) (optional sign, digits) is within Go's int64. */
function fitsInt64(text: string, a: number, b: number): boolean {
  let i = a;
  const c0 = text.charCodeAt(i);
  const negative = c0 === C_MINUS;
  if (negative || c0 === C_PLUS) i++;
  while (i < b - 1 && text.charCodeAt(i) === C_0) i++;
  const digits = b - i;
  if (digits !== 19) return digits < 19;
  return text.slice(i, b) <= (negative ? '9223372036854775808' : '9223372036854775807');
}

function isBlank(c: number): boolean {
  return c === C_SPACE || c === C_TAB;
}
