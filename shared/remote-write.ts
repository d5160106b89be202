/**
 * Prometheus remote write 1.0 client: encoding (protobuf `WriteRequest`, snappy block format) and
 * delivery (one HTTP POST, and retries with backoff up to an absolute deadline).
 *
 * Spec: https://prometheus.io/docs/specs/prw/remote_write_spec/ ("Protocol", "Retries & Backoff").
 * The message layout is the one of prometheus/prompb/remote.proto and types.proto:
 *
 *   message WriteRequest { repeated TimeSeries timeseries = 1; }
 *   message TimeSeries   { repeated Label labels = 1; repeated Sample samples = 2; }
 *   message Label        { string name = 1; string value = 2; }
 *   message Sample       { double value = 1; int64 timestamp = 2; }   // timestamp in ms
 *
 * Encoding is a pure function. Delivery uses node:http(s) with a keep-alive agent rather than the
 * global fetch: the sidecar posts every few seconds and once more on exit, so a warm connection
 * saves the TCP (and TLS) handshake on the latency-critical final push, node:http has less
 * per-request overhead than undici's WHATWG streams, and free sockets of a keep-alive agent are
 * unref'd (they never hold the process open) and closed after an idle timeout.
 */
import { http } from './node-builtins.ts';
import { createRequire } from 'node:module';
import { https } from './https-lazy.ts';
import { VERSION } from './version.ts';

// snappyjs (pure JavaScript, the snappy block format) rather than the native `snappy` addon: the
// addon's loader and runtime cost RSS against the sidecar's memory target, and one push every 10 s
// makes the addon's speed worth nothing. Loaded with require, not import: importing a CommonJS
// package from ESM runs Node's CJS export lexer, which costs about as much RSS again, for good.
// bench/sidecar-costs.ts measures all three (docs/benchmarks.md, "Sidecar footprint").
const snappy: typeof import('snappyjs') = createRequire(import.meta.url)('snappyjs');

export interface RwSample {
  value: number;
  timestampMs: number;
}

/** Labels include `__name__`; the encoder sorts them by name, as the spec requires. */
export interface RwSeries {
  labels: ReadonlyArray<readonly [string, string]>;
  samples: readonly RwSample[];
}

export type SendOutcome =
  | { ok: true; status: number }
  | { ok: false; retryable: boolean; status?: number; error: Error; /** Retry-After of a 429/5xx, in ms. */ retryAfterMs?: number };

export type DeliveryOutcome = SendOutcome & { attempts: number };

// Protobuf wire tags: (field number << 3) | wire type (0 varint, 1 fixed64, 2 length-delimited).
const TAG_TIMESERIES = (1 << 3) | 2;
const TAG_LABEL = (1 << 3) | 2;
const TAG_SAMPLE = (2 << 3) | 2;
const TAG_NAME = (1 << 3) | 2;
const TAG_VALUE_STR = (2 << 3) | 2;
const TAG_VALUE_DOUBLE = (1 << 3) | 1;
const TAG_TIMESTAMP = (2 << 3) | 0;

const byName = (a: readonly [string, string], b: readonly [string, string]): number =>
  a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0;

const byTimestamp = (a: RwSample, b: RwSample): number => a.timestampMs - b.timestampMs;

/** Bytes of a varint holding the unsigned 32-bit `v`. */
function varint32Size(v: number): number {
  return v < 0x80 ? 1 : v < 0x4000 ? 2 : v < 0x200000 ? 3 : v < 0x10000000 ? 4 : 5;
}

/** Writes the unsigned 32-bit `v` as a varint at `pos`; returns the position after it. */
function writeVarint32(buf: Buffer, pos: number, v: number): number {
  while (v > 127) {
    buf[pos++] = (v & 127) | 128;
    v >>>= 7;
  }
  buf[pos++] = v;
  return pos;
}

/** Bytes of an int64 varint holding the safe integer `v` (negative values take 10). */
function int64Size(v: number): number {
  if (v < 0) return 10;
  let n = 1;
  while (v >= 128) {
    v = Math.floor(v / 128);
    n++;
  }
  return n;
}

/** The labels in name order (the argument itself when already sorted), checked unique. */
function sortedLabels(labels: RwSeries['labels']): RwSeries['labels'] {
  let sorted = labels;
  for (let i = 1; i < labels.length; i++) {
    if (labels[i]![0] < labels[i - 1]![0]) {
      sorted = [...labels].sort(byName);
      break;
    }
  }
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i]![0] === sorted[i - 1]![0]) {
      throw new TypeError(`remote write: duplicate label name "${sorted[i]![0]}" in a series`);
    }
  }
  return sorted;
}

function sortedSamples(samples: readonly RwSample[]): readonly RwSample[] {
  for (let i = 1; i < samples.length; i++) {
    if (samples[i]!.timestampMs < samples[i - 1]!.timestampMs) return [...samples].sort(byTimestamp);
  }
  return samples;
}

/**
 * The `Label` fields of one series, encoded (sorted and checked unique, as the spec requires:
 * "Label names MUST be sorted in lexicographical order"). Unsorted input is sorted in a copy.
 */
function encodeLabels(labels: RwSeries['labels']): Buffer {
  const sorted = sortedLabels(labels);
  let size = 0;
  for (const [name, value] of sorted) size += labelFieldSize(Buffer.byteLength(name, 'utf8'), Buffer.byteLength(value, 'utf8'));
  const buf = Buffer.allocUnsafe(size);
  let pos = 0;
  for (const [name, value] of sorted) {
    const n = Buffer.byteLength(name, 'utf8');
    const v = Buffer.byteLength(value, 'utf8');
    buf[pos++] = TAG_LABEL;
    pos = writeVarint32(buf, pos, labelSize(n, v));
    buf[pos++] = TAG_NAME;
    pos = writeVarint32(buf, pos, n);
    pos += buf.write(name, pos, n, 'utf8');
    buf[pos++] = TAG_VALUE_STR;
    pos = writeVarint32(buf, pos, v);
    pos += buf.write(value, pos, v, 'utf8');
  }
  return buf;
}

/** A `Label` message of name and value of `n` and `v` UTF-8 bytes; then as a field of `TimeSeries`. */
const labelSize = (n: number, v: number): number => 1 + varint32Size(n) + n + 1 + varint32Size(v) + v;
const labelFieldSize = (n: number, v: number): number => 1 + varint32Size(labelSize(n, v)) + labelSize(n, v);

/**
 * Encoded labels by labels array. A series' labels rarely change while the same array is passed
 * push after push (series-store.ts keeps it), so each is encoded once: labels are most of a
 * WriteRequest's bytes, and a push every 10 s runs too rarely to be optimized by the JIT.
 */
const encodedLabels = new WeakMap<RwSeries['labels'], Buffer>();

export interface EncodeOptions {
  /**
   * Called for a series that cannot be encoded (a label name twice, a timestamp that is no
   * integer): that series is left out and the others are encoded. Without it, such a series
   * throws a TypeError, so a caller that checks its input never sends a silently shorter request.
   */
  readonly onInvalid?: (index: number, error: TypeError) => void;
}

/**
 * The uncompressed protobuf `WriteRequest`; exported for tests and size accounting. A two-pass
 * encoder: the first pass measures every length-delimited part, the second writes into one
 * Buffer of the exact size. The bytes are those protobufjs writes for the layout above (a unit
 * test compares them), without loading protobufjs (~6.5 MB RSS) or its per-field allocations.
 * Callers must not change a labels array once passed (it is encoded once, see `encodedLabels`).
 */
export function encodeWriteRequestProto(series: readonly RwSeries[], options: EncodeOptions = {}): Buffer {
  // Spec: samples of a series "MUST be sorted by timestamp". Unsorted input is sorted in a copy.
  const labelsOf: Array<Buffer | undefined> = new Array(series.length);
  const samplesOf: Array<readonly RwSample[]> = new Array(series.length);
  const bodySizes: number[] = new Array(series.length);
  let total = 0;
  for (let i = 0; i < series.length; i++) {
    const s = series[i]!;
    let labels = encodedLabels.get(s.labels);
    const samples = sortedSamples(s.samples);
    try {
      if (labels === undefined) {
        labels = encodeLabels(s.labels);
        encodedLabels.set(s.labels, labels);
      }
      for (const sample of samples) {
        if (!Number.isSafeInteger(sample.timestampMs)) {
          throw new TypeError(`remote write: timestamp ${sample.timestampMs} is not an integer number of milliseconds`);
        }
      }
    } catch (error) {
      if (!(error instanceof TypeError) || options.onInvalid === undefined) throw error;
      options.onInvalid(i, error);
      continue;
    }
    labelsOf[i] = labels;
    samplesOf[i] = samples;
    let body = labels.length;
    for (const sample of samples) {
      // Proto3 readers accept default values written explicitly; writing them always keeps the
      // encoder branch-free (and -0 distinct from 0).
      const sampleSize = 1 + 8 + 1 + int64Size(sample.timestampMs);
      body += 1 + 1 + sampleSize; // a sample is at most 20 bytes: a one-byte length
    }
    bodySizes[i] = body;
    total += 1 + varint32Size(body) + body;
  }

  const buf = Buffer.allocUnsafe(total);
  let pos = 0;
  for (let i = 0; i < series.length; i++) {
    const labels = labelsOf[i];
    if (labels === undefined) continue; // left out (onInvalid)
    buf[pos++] = TAG_TIMESERIES;
    pos = writeVarint32(buf, pos, bodySizes[i]!);
    buf.set(labels, pos);
    pos += labels.length;
    for (const sample of samplesOf[i]!) {
      const ts = sample.timestampMs;
      buf[pos++] = TAG_SAMPLE;
      buf[pos++] = 1 + 8 + 1 + int64Size(ts);
      buf[pos++] = TAG_VALUE_DOUBLE;
      pos = buf.writeDoubleLE(sample.value, pos);
      buf[pos++] = TAG_TIMESTAMP;
      // int64 varint of the two's complement: low and high 32-bit words.
      const neg = ts < 0;
      const abs = neg ? -ts : ts;
      let lo = abs >>> 0;
      let hi = ((abs - lo) / 4294967296) >>> 0;
      if (neg) {
        hi = ~hi >>> 0;
        lo = ~lo >>> 0;
        if (++lo > 0xffffffff) {
          lo = 0;
          hi = (hi + 1) >>> 0;
        }
      }
      while (hi !== 0) {
        buf[pos++] = (lo & 127) | 128;
        lo = ((lo >>> 7) | (hi << 25)) >>> 0;
        hi >>>= 7;
      }
      pos = writeVarint32(buf, pos, lo);
    }
  }
  if (pos !== total) throw new Error(`remote write: encoded ${pos} bytes, expected ${total}`);
  return buf;
}

/** Protobuf `WriteRequest`, snappy block-compressed (not the framed format), as the spec requires. */
export function encodeWriteRequest(series: readonly RwSeries[], options: EncodeOptions = {}): Buffer {
  return snappy.compress(encodeWriteRequestProto(series, options));
}

/** `jobmetrics-sidecar/<package version>`, the default User-Agent of every POST. */
export const USER_AGENT = `jobmetrics-sidecar/${VERSION}`;

export interface SendOptions {
  timeoutMs: number;
  signal?: AbortSignal;
  /** Default USER_AGENT; the gateway names itself. */
  userAgent?: string;
  /** The `Authorization` header, if any (a writer's token for the gateway, shared/writer-token.ts). */
  authorization?: string;
}

// Free sockets time out after 30 s; shorter than typical server idle timeouts would be better but
// the push interval is 10 s, so 30 s keeps the connection warm between pushes.
const AGENT_OPTIONS = { keepAlive: true, maxSockets: 4, timeout: 30_000 } as const;
const httpAgent = new http.Agent(AGENT_OPTIONS);
let httpsAgent: import('node:https').Agent | undefined;

/** Closes the idle keep-alive sockets (for tests and a tidy exit; they never hold the process). */
export function closeIdleConnections(): void {
  httpAgent.destroy();
  httpsAgent?.destroy();
}

const BODY_EXCERPT_CHARS = 200;
/** Most response bytes kept for the error message; the rest is drained so the socket can be reused. */
const BODY_KEEP_BYTES = 4096;

interface RawResponse {
  status: number;
  retryAfter: string | undefined;
  body: string;
}

function excerpt(body: string): string {
  const flat = body.replace(/\s+/g, ' ').trim();
  return flat.length > BODY_EXCERPT_CHARS ? flat.slice(0, BODY_EXCERPT_CHARS - 1) + '…' : flat;
}

class TimeoutError extends Error {
  override readonly name = 'TimeoutError';
}

function postOnce(target: URL, body: Buffer, timeoutMs: number, signal: AbortSignal | undefined, userAgent: string, authorization: string | undefined): Promise<{ res: RawResponse; reused: boolean } | { err: Error; reused: boolean }> {
  return new Promise((resolve) => {
    const isHttps = target.protocol === 'https:';
    const mod = isHttps ? https() : http;
    let settled = false;
    let reused = false;
    const finish = (v: { res: RawResponse } | { err: Error }): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      resolve({ ...v, reused });
    };
    const req = mod.request(target, {
      method: 'POST',
      agent: isHttps ? (httpsAgent ??= new (https().Agent)(AGENT_OPTIONS)) : httpAgent,
      headers: {
        // Remote write 1.0 spec, "Protocol": these four headers are required.
        'Content-Encoding': 'snappy',
        'Content-Type': 'application/x-protobuf',
        'X-Prometheus-Remote-Write-Version': '0.1.0',
        'User-Agent': userAgent,
        'Content-Length': String(body.length),
        ...(authorization !== undefined && { Authorization: authorization }),
      },
    });
    // Before anything can destroy the request (an abort, the timer): its error then has a listener.
    req.on('error', (err) => finish({ err }));
    const onAbort = (): void => {
      const err = new Error('aborted', { cause: signal?.reason });
      err.name = 'AbortError';
      req.destroy(err);
      finish({ err });
    };
    const timer = setTimeout(() => {
      const err = new TimeoutError(`no complete response within ${timeoutMs} ms`);
      req.destroy(err);
      finish({ err });
    }, Math.max(0, timeoutMs));
    if (signal?.aborted) {
      onAbort();
      return;
    }
    signal?.addEventListener('abort', onAbort, { once: true });
    req.on('socket', () => {
      reused = req.reusedSocket;
    });
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      let kept = 0;
      res.on('data', (chunk: Buffer) => {
        if (kept < BODY_KEEP_BYTES) {
          chunks.push(chunk);
          kept += chunk.length;
        }
      });
      res.on('error', (err) => finish({ err }));
      res.on('end', () => {
        const retryAfter = res.headers['retry-after'];
        finish({
          res: {
            status: res.statusCode ?? 0,
            retryAfter: typeof retryAfter === 'string' ? retryAfter : undefined,
            body: Buffer.concat(chunks).subarray(0, BODY_KEEP_BYTES).toString('utf8'),
          },
        });
      });
    });
    req.end(body);
  });
}

/** Retry-After as milliseconds from now: delta-seconds or an HTTP-date (RFC 9110 §10.2.3). */
export function parseRetryAfter(value: string | undefined, nowMs: number): number | undefined {
  if (value === undefined) return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - nowMs);
}

/**
 * One POST. Never throws: the outcome says whether it worked and whether a retry may help
 * (spec, "Retries & Backoff": retry on 5xx and 429, never on other 4xx; network errors and
 * timeouts are retryable too). A reused keep-alive socket the server had already closed is
 * retried once at once on a fresh socket, as node's http docs recommend for `reusedSocket`.
 */
export async function sendWriteRequest(url: string, body: Buffer, opts: SendOptions): Promise<SendOutcome> {
  let target: URL;
  try {
    target = new URL(url);
    if (target.protocol !== 'http:' && target.protocol !== 'https:') throw new TypeError(`unsupported protocol ${target.protocol}`);
  } catch (cause) {
    return { ok: false, retryable: false, error: new Error(`remote write POST ${url}: invalid URL`, { cause }) };
  }
  const started = Date.now();
  const userAgent = opts.userAgent ?? USER_AGENT;
  let r = await postOnce(target, body, opts.timeoutMs, opts.signal, userAgent, opts.authorization);
  if ('err' in r && r.reused && isStaleSocketError(r.err)) {
    r = await postOnce(target, body, opts.timeoutMs - (Date.now() - started), opts.signal, userAgent, opts.authorization);
  }
  if ('err' in r) {
    const aborted = r.err.name === 'AbortError';
    const what = r.err instanceof TimeoutError ? 'timed out' : aborted ? 'aborted' : 'failed';
    return { ok: false, retryable: !aborted, error: new Error(`remote write POST ${url} ${what}: ${r.err.message}`, { cause: r.err }) };
  }
  const { status, body: text, retryAfter } = r.res;
  if (status >= 200 && status < 300) return { ok: true, status };
  const retryable = status >= 500 || status === 429;
  const error = new Error(`remote write POST ${url} returned HTTP ${status}${text ? `: ${excerpt(text)}` : ''}`);
  const wait = retryable ? parseRetryAfter(retryAfter, Date.now()) : undefined;
  return wait === undefined ? { ok: false, retryable, status, error } : { ok: false, retryable, status, error, retryAfterMs: wait };
}

function isStaleSocketError(err: Error): boolean {
  const code = (err as { code?: unknown }).code;
  return code === 'ECONNRESET' || code === 'EPIPE';
}

/**
 * Below this much time left, a retry cannot be expected to finish; give up instead. An attempt cut
 * to a few milliseconds only times out, and a timeout is ambiguous (the request may have been
 * counted), which a sidecar must then treat as maybe delivered: a later series generation starts
 * above it, and what it held is lost when it was not (sidecar/series-store.ts `maybeTotal`).
 * Generous against a busy node's event-loop delays (a 503 from a loaded receiver once took > 6 ms);
 * small beside a push interval.
 */
export const MIN_ATTEMPT_MS = 100;

export interface DeliverOptions {
  /** Absolute deadline, `Date.now()`-based; no attempt runs or waits past it. */
  deadlineMs: number;
  /** Per-attempt timeout; the last attempt's is cut to the time left. */
  timeoutMs: number;
  baseBackoffMs?: number;
  maxBackoffMs?: number;
  /** Stop after this many attempts even if time is left. */
  maxAttempts?: number;
  /**
   * No retry sooner than this after the previous attempt, Retry-After or not; when the deadline
   * leaves no room for such a wait, give up instead of a last hurried attempt.
   */
  minDelayMs?: number;
  signal?: AbortSignal;
  onRetry?: (attempt: number, outcome: SendOutcome, delayMs: number) => void;
  /** Jitter source in [0, 1); defaults to Math.random. */
  random?: () => number;
  /** Default USER_AGENT. */
  userAgent?: string;
  /** The `Authorization` header of every attempt. */
  authorization?: string;
}

/** Full-jitter exponential backoff (a uniform draw in [0, min(cap, base·2^(n-1))]). */
export function backoffDelayMs(attempt: number, baseMs: number, maxMs: number, random: () => number): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.max(0, attempt - 1));
  return Math.floor(random() * ceiling);
}

/**
 * POSTs until a 2xx, a non-retryable answer, the attempt limit or the deadline. A 429/503 with
 * Retry-After is honoured: it waits that long, or gives up at once when the wait would pass the
 * deadline (retrying earlier than asked would only be refused again).
 */
export async function deliverWithRetry(url: string, body: Buffer, opts: DeliverOptions): Promise<DeliveryOutcome> {
  const base = opts.baseBackoffMs ?? 100;
  const cap = opts.maxBackoffMs ?? 2_000;
  const random = opts.random ?? Math.random;
  const maxAttempts = opts.maxAttempts ?? Infinity;
  const minDelay = opts.minDelayMs ?? 0;
  let attempts = 0;
  let last: DeliveryOutcome | undefined;
  for (;;) {
    const left = opts.deadlineMs - Date.now();
    // The wait before a retry ends MIN_ATTEMPT_MS before the deadline, but a busy machine fires its
    // timer late: a retry left with less gives up with the last attempt's (unambiguous) outcome.
    if (last !== undefined && left < MIN_ATTEMPT_MS) return last;
    if (left <= 0) {
      const error = new Error(`remote write POST ${url}: deadline passed before attempt ${attempts + 1}`);
      return { ok: false, retryable: true, error, attempts };
    }
    const sendOpts: SendOptions = { timeoutMs: Math.min(opts.timeoutMs, left) };
    if (opts.signal) sendOpts.signal = opts.signal;
    if (opts.userAgent !== undefined) sendOpts.userAgent = opts.userAgent;
    if (opts.authorization !== undefined) sendOpts.authorization = opts.authorization;
    attempts++;
    const outcome = await sendWriteRequest(url, body, sendOpts);
    if (outcome.ok || !outcome.retryable || attempts >= maxAttempts || opts.signal?.aborted) return { ...outcome, attempts };
    const remaining = opts.deadlineMs - Date.now();
    if (remaining < MIN_ATTEMPT_MS) return { ...outcome, attempts };
    const asked = outcome.retryAfterMs;
    let delay: number;
    if (asked !== undefined) {
      delay = Math.max(asked, minDelay);
      if (delay > remaining - MIN_ATTEMPT_MS) return { ...outcome, attempts };
    } else {
      if (minDelay > remaining - MIN_ATTEMPT_MS) return { ...outcome, attempts };
      delay = Math.min(Math.max(minDelay, backoffDelayMs(attempts, base, cap, random)), remaining - MIN_ATTEMPT_MS);
    }
    opts.onRetry?.(attempts, outcome, delay);
    if (delay > 0 && !(await sleep(delay, opts.signal))) return { ...outcome, attempts };
    last = { ...outcome, attempts };
  }
}

/** Resolves true after `ms`, or false at once when `signal` aborts. */
function sleep(ms: number, signal: AbortSignal | undefined): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve(false);
    const onAbort = (): void => {
      clearTimeout(t);
      resolve(false);
    };
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
