/**
 * Answers from a slow source (the API server), remembered for a while and shared while asked:
 * each entry lives until its own time, at most `maxEntries` are kept (past it the oldest go: a
 * Map iterates in insertion order), and concurrent askers of one key share one pending answer.
 * The webhook's Job-owner lookups (webhook/job-owner.ts) and the gateway's token reviews
 * (gateway/writer-identity.ts) keep their answers here.
 *
 * `V` is what is remembered, `A` what an asker gets (a superset: an answer that is not worth
 * remembering, such as "the API server did not answer", is shared but not kept).
 */
export interface AnswerCacheOptions {
  /** The most answers remembered. */
  readonly maxEntries: number;
  /** Milliseconds. */
  readonly now: () => number;
}

export class AnswerCache<V, A = V> {
  readonly #entries = new Map<string, { readonly value: V; readonly untilMs: number }>();
  readonly #inFlight = new Map<string, Promise<A>>();
  readonly #opts: AnswerCacheOptions;

  constructor(opts: AnswerCacheOptions) {
    this.#opts = opts;
  }

  get size(): number {
    return this.#entries.size;
  }

  /** The remembered answer while it is fresh; an expired one is forgotten. */
  get(key: string): V | undefined {
    const entry = this.#entries.get(key);
    if (entry === undefined) return undefined;
    if (entry.untilMs > this.#opts.now()) return entry.value;
    this.#entries.delete(key);
    return undefined;
  }

  /** Remembers `value` for `ttlMs` (not at all when that is ≤ 0). */
  remember(key: string, value: V, ttlMs: number): void {
    if (ttlMs <= 0) return;
    this.#entries.delete(key);
    while (this.#entries.size >= this.#opts.maxEntries) {
      const oldest = this.#entries.keys().next();
      if (oldest.done === true) break;
      this.#entries.delete(oldest.value);
    }
    this.#entries.set(key, { value, untilMs: this.#opts.now() + ttlMs });
  }

  /** Runs `produce` once for all concurrent askers of `key`; each gets its answer. */
  shared(key: string, produce: () => Promise<A>): Promise<A> {
    const pending = this.#inFlight.get(key);
    if (pending !== undefined) return pending;
    const p = produce().finally(() => this.#inFlight.delete(key));
    this.#inFlight.set(key, p);
    return p;
  }

  /** Forgets every expired answer; returns how many. */
  expire(): number {
    const now = this.#opts.now();
    let n = 0;
    for (const [k, v] of this.#entries) {
      if (v.untilMs <= now) {
        this.#entries.delete(k);
        n++;
      }
    }
    return n;
  }
}
