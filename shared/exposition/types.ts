/**
 * The data model of a parsed scrape: what the exposition parser returns and the sidecar consumes.
 * Kept apart from the parser so that consumers depend on the shape, not the implementation.
 */

/** Family types of Prometheus text 0.0.4 and OpenMetrics 1.0 (`unknown` is OpenMetrics' untyped). */
export type MetricType =
  | 'counter'
  | 'gauge'
  | 'histogram'
  | 'gaugehistogram'
  | 'summary'
  | 'info'
  | 'stateset'
  | 'untyped'
  | 'unknown';

export type ExpositionFormat = 'prometheus' | 'openmetrics';

/** Labels in the order they appeared; names are unique within one sample. */
export type Labels = ReadonlyArray<readonly [name: string, value: string]>;

export interface Sample {
  /** The full sample name as written, e.g. `http_requests_total`, `latency_seconds_bucket`. */
  readonly name: string;
  readonly labels: Labels;
  readonly value: number;
  /**
   * Milliseconds since the epoch when the exposition carried a timestamp. Any timestamp
   * Prometheus accepts is accepted (OpenMetrics: any finite number of seconds; text 0.0.4: any
   * int64), so beyond ±2^53 ms this is the nearest double, not the exact value.
   */
  readonly timestampMs?: number;
}

export interface MetricFamily {
  /** The family name from `# TYPE` (OpenMetrics: without `_total`), or the sample name if untyped. */
  readonly name: string;
  readonly type: MetricType;
  readonly help?: string;
  readonly unit?: string;
  readonly samples: readonly Sample[];
}

export interface ParseLimits {
  /** Largest body accepted, in bytes. */
  readonly maxBytes: number;
  /** Most samples accepted in one body. */
  readonly maxSamples: number;
  /**
   * Most metric families in one body. Families declared by HELP/TYPE lines alone have no samples,
   * so `maxSamples` does not bound them: without this a body of metadata lines could cost far
   * more memory than its size.
   */
  readonly maxFamilies: number;
  readonly maxLabelNameLength: number;
  readonly maxLabelValueLength: number;
  /** Most labels on one sample. */
  readonly maxLabelsPerSample: number;
}

export const DEFAULT_PARSE_LIMITS: ParseLimits = {
  maxBytes: 16 * 1024 * 1024,
  maxSamples: 50_000,
  maxFamilies: 50_000,
  maxLabelNameLength: 256,
  maxLabelValueLength: 4_096,
  maxLabelsPerSample: 64,
};

/** A parse failure: which line (1-based, 0 when not about one line) and what was wrong. */
export interface ParseErrorInfo {
  readonly line: number;
  readonly message: string;
}

/**
 * Something the specifications forbid but Prometheus's own parser accepts, so the body is taken
 * as Prometheus would take it and the caller may say so (e.g. a second TYPE line for a family).
 */
export interface ParseWarning {
  readonly line: number;
  /** Without the line number, so that the same warning in every scrape reads the same. */
  readonly message: string;
}

export type ParseResult =
  | { readonly ok: true; readonly families: readonly MetricFamily[]; readonly format: ExpositionFormat; readonly warnings: readonly ParseWarning[] }
  | { readonly ok: false; readonly error: ParseErrorInfo };
