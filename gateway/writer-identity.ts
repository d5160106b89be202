/**
 * Who may write what (docs/gateway.md "Who may write what"): a write counts only for its writer's
 * own namespace. The writer is who the Kubernetes API server says its bearer token belongs to
 * (TokenReview), never what its labels or its network address claim:
 *
 * - a **pod**: the sidecar's projected service-account token (audience `jobmetrics-gateway`,
 *   bound to the pod; webhook/mutate.ts mounts it into the sidecar alone). Every series it writes
 *   gets `namespace` = the token's namespace and `pod` = the token's pod, whatever it said;
 * - a **trusted writer**: a service account named in `JOBMETRICS_TRUSTED_WRITERS` (the outcome
 *   recorder, which writes every opted-in namespace's Job outcomes): its labels are kept.
 *
 * The decisions (`writerFromReview`, `asWriter`) are pure; `TokenReviewer` is the shell that asks
 * the API server and remembers the answers.
 */
import { createHash } from 'node:crypto';
import { AnswerCache } from '../shared/answer-cache.ts';
import type { RwSeries } from '../shared/remote-write.ts';

/** The subset of authentication.k8s.io/v1 TokenReviewStatus the gateway reads. */
export interface TokenReviewStatus {
  readonly authenticated?: boolean;
  readonly audiences?: readonly string[];
  readonly error?: string;
  readonly user?: { readonly username?: string; readonly extra?: Readonly<Record<string, readonly string[]>> };
}

export type Writer =
  | { readonly kind: 'pod'; readonly namespace: string; readonly pod: string; readonly serviceAccount: string }
  | { readonly kind: 'trusted'; readonly serviceAccount: string };

export type RefusalReason = 'no-token' | 'invalid-token' | 'not-a-service-account' | 'not-bound-to-a-pod';

export type Verdict = { readonly ok: true; readonly writer: Writer } | { readonly ok: false; readonly reason: RefusalReason; readonly message: string };

const SA_PREFIX = 'system:serviceaccount:';
/** Set by the API server on tokens bound to a pod (KEP-1205, bound service account tokens). */
export const POD_NAME_EXTRA = 'authentication.kubernetes.io/pod-name';

/** `namespace:name` of each trusted service account, as in `JOBMETRICS_TRUSTED_WRITERS`. */
export function parseTrustedWriters(raw: string): { ok: true; writers: ReadonlySet<string> } | { ok: false; error: string } {
  const writers = new Set<string>();
  for (const item of raw.split(',').map((s) => s.trim()).filter((s) => s !== '')) {
    if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?:[a-z0-9]([-.a-z0-9]*[a-z0-9])?$/.test(item)) {
      return { ok: false, error: `"${item}" is not namespace:serviceaccount (lowercase DNS names)` };
    }
    writers.add(item);
  }
  return { ok: true, writers };
}

/** What a TokenReview's answer makes of the writer. */
export function writerFromReview(status: TokenReviewStatus, opts: { readonly audience: string; readonly trusted: ReadonlySet<string> }): Verdict {
  if (status.authenticated !== true) {
    return { ok: false, reason: 'invalid-token', message: `the API server did not authenticate the token${status.error ? `: ${status.error}` : ''}` };
  }
  // The API server answers with the audiences the token and the review share; asked for ours, it
  // authenticates only a token made for us. Checked again, so a change there cannot widen this.
  if (!(status.audiences ?? []).includes(opts.audience)) {
    return { ok: false, reason: 'invalid-token', message: `the token is not for audience ${opts.audience}` };
  }
  const username = status.user?.username ?? '';
  const parts = username.startsWith(SA_PREFIX) ? username.slice(SA_PREFIX.length).split(':') : [];
  const [namespace, name] = parts;
  if (parts.length !== 2 || !namespace || !name) {
    return { ok: false, reason: 'not-a-service-account', message: `${username || 'the token'} is not a service account` };
  }
  const serviceAccount = `${namespace}:${name}`;
  if (opts.trusted.has(serviceAccount)) return { ok: true, writer: { kind: 'trusted', serviceAccount } };
  const pod = status.user?.extra?.[POD_NAME_EXTRA]?.[0];
  if (pod === undefined || pod === '') {
    return {
      ok: false,
      reason: 'not-bound-to-a-pod',
      message: `the token of service account ${serviceAccount} is not bound to a pod (the sidecar's projected token is; a token from the TokenRequest API without a pod is not)`,
    };
  }
  return { ok: true, writer: { kind: 'pod', namespace, pod, serviceAccount } };
}

/**
 * The series as the writer may write them: a pod's get its namespace and pod. The sidecar's own
 * `pod` label is the pod's name, or `<name>/gen<n>` after a delivery gap (docs/semantics.md),
 * which is kept; anything else becomes the pod's name. Returns how many series were changed
 * (a sidecar's never are: a changed one is a write that claimed to be someone else).
 */
export function asWriter(series: readonly RwSeries[], writer: Writer): { series: RwSeries[]; relabelled: number } {
  if (writer.kind === 'trusted') return { series: series as RwSeries[], relabelled: 0 };
  let relabelled = 0;
  const out = series.map((s) => {
    let namespace: string | undefined;
    let pod: string | undefined;
    for (const [n, v] of s.labels) {
      if (n === 'namespace') namespace = v;
      else if (n === 'pod') pod = v;
    }
    const podOk = pod !== undefined && (pod === writer.pod || isGenerationOf(pod, writer.pod));
    if (namespace === writer.namespace && podOk) return s;
    relabelled++;
    const labels: Array<readonly [string, string]> = s.labels.filter(([n]) => n !== 'namespace' && n !== 'pod');
    labels.push(['namespace', writer.namespace], ['pod', podOk ? (pod as string) : writer.pod]);
    return { labels, samples: s.samples };
  });
  return { series: out, relabelled };
}

function isGenerationOf(label: string, pod: string): boolean {
  return label.length > pod.length + 4 && label.startsWith(`${pod}/gen`) && /^\d+$/.test(label.slice(pod.length + 4));
}

// ---- the shell: asking the API server, remembering its answers ----------------------------------

/** One TokenReview: the status, or why there is none (the API server unreachable, forbidden...). */
export type ReviewAnswer = { readonly status: TokenReviewStatus } | { readonly error: Error };
export type ReviewFn = (token: string, audience: string) => Promise<ReviewAnswer>;

export interface ReviewerOptions {
  readonly audience: string;
  readonly trusted: ReadonlySet<string>;
  readonly review: ReviewFn;
  /** How long an accepted token's answer is reused (never past the token's own expiry). */
  readonly acceptTtlMs?: number;
  /** How long a refused token's answer is reused, so a writer retrying a bad token costs no API call. */
  readonly refuseTtlMs?: number;
  /** The most answers remembered; past it the oldest are forgotten. */
  readonly maxEntries?: number;
  readonly now?: () => number;
}

/**
 * The outcome of checking one request's token: a verdict, or `unavailable` when the API server
 * could not answer (the gateway then answers 503, and the sender retries).
 */
export type Check = Verdict | { readonly ok: false; readonly reason: 'unavailable'; readonly message: string };

export interface ReviewStats {
  /** TokenReviews sent, by how they came back. */
  readonly reviews: { authenticated: number; refused: number; failed: number };
  cacheHits: number;
}

/**
 * Checks bearer tokens with TokenReview and remembers each answer for a while, keyed by the
 * token's SHA-256 (the tokens themselves are not kept). Concurrent checks of one token share one
 * review. An answer is reused for at most `acceptTtlMs` (5 min): a token stays valid as long as
 * its pod exists, and it only ever speaks for its own namespace, so a deleted pod's token writing
 * for a few more minutes can reach nothing it could not reach before.
 */
export class TokenReviewer {
  readonly #opts: Required<Omit<ReviewerOptions, 'review' | 'trusted' | 'audience'>> & Pick<ReviewerOptions, 'review' | 'trusted' | 'audience'>;
  readonly #answers: AnswerCache<Verdict, Check>;
  readonly stats: ReviewStats = { reviews: { authenticated: 0, refused: 0, failed: 0 }, cacheHits: 0 };

  constructor(opts: ReviewerOptions) {
    this.#opts = { acceptTtlMs: 300_000, refuseTtlMs: 30_000, maxEntries: 50_000, now: Date.now, ...opts };
    this.#answers = new AnswerCache({ maxEntries: this.#opts.maxEntries, now: this.#opts.now });
  }

  get size(): number {
    return this.#answers.size;
  }

  /** The writer behind an `Authorization` header. Never throws. */
  check(authorization: string | undefined): Promise<Check> {
    const token = bearerToken(authorization);
    if (token === undefined) {
      return Promise.resolve({ ok: false, reason: 'no-token', message: 'no bearer token: writes need the sidecar\'s token (Authorization: Bearer)' });
    }
    const key = createHash('sha256').update(token).digest('base64url');
    const known = this.#answers.get(key);
    if (known !== undefined) {
      this.stats.cacheHits++;
      return Promise.resolve(known);
    }
    return this.#answers.shared(key, () => this.#review(token, key));
  }

  async #review(token: string, key: string): Promise<Check> {
    let answer: ReviewAnswer;
    try {
      answer = await this.#opts.review(token, this.#opts.audience);
    } catch (error) {
      answer = { error: error instanceof Error ? error : new Error(String(error)) };
    }
    if ('error' in answer) {
      this.stats.reviews.failed++;
      return { ok: false, reason: 'unavailable', message: `TokenReview failed: ${answer.error.message}` };
    }
    const verdict = writerFromReview(answer.status, { audience: this.#opts.audience, trusted: this.#opts.trusted });
    if (verdict.ok) this.stats.reviews.authenticated++;
    else this.stats.reviews.refused++;
    const now = this.#opts.now();
    const ttl = verdict.ok ? Math.min(this.#opts.acceptTtlMs, Math.max(0, (jwtExpiry(token) ?? Infinity) - now)) : this.#opts.refuseTtlMs;
    this.#answers.remember(key, verdict, ttl);
    return verdict;
  }

  /** Forgets answers past their time (called now and then; a lookup also drops its own). */
  expire(): number {
    return this.#answers.expire();
  }

}

function bearerToken(authorization: string | undefined): string | undefined {
  if (authorization === undefined) return undefined;
  const m = /^Bearer +([!-~]+)\s*$/i.exec(authorization);
  return m?.[1];
}

/**
 * The `exp` claim of a JWT, in milliseconds, read without verifying anything (the API server
 * verifies): only to never reuse an answer past the token's own end.
 */
export function jwtExpiry(token: string): number | undefined {
  const payload = token.split('.')[1];
  if (payload === undefined) return undefined;
  try {
    const exp = (JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { exp?: unknown }).exp;
    return typeof exp === 'number' && Number.isFinite(exp) ? exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}
