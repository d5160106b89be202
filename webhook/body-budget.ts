/**
 * How many request-body bytes the webhook holds at once. Every review's body is read whole before
 * it is decoded, so without a bound over all requests, slow clients that each declare a large body
 * and send most of it make memory grow with their number (docs/webhook.md "Limits and load
 * shedding").
 *
 * A request reserves its declared Content-Length before a byte of its body is read (a chunked body,
 * which declares nothing, reserves the most a body may be), and gives it back when its answer is
 * written or its connection closes. A request that does not fit is refused at once, so its body is
 * never buffered. Bodies over ORDINARY_BODY_BYTES together may take only part of the budget:
 * the rest stays free for the reviews the API server actually sends, a few KiB to tens of KiB
 * each, however many large ones are held by slow clients.
 *
 * No I/O and no clock: the server calls admit() and release(); the tests drive it with numbers.
 */

/** Larger than any ordinary pod's AdmissionReview (a Job pod is a few KiB to tens of KiB). */
export const ORDINARY_BODY_BYTES = 256 * 1024;
/** The share of the budget kept for ordinary bodies. */
export const ORDINARY_RESERVE_FRACTION = 1 / 4;

export interface BodyBudgetLimits {
  /** The largest body accepted at all. */
  readonly maxRequestBytes: number;
  /** All bodies held at once. */
  readonly maxInFlightBytes: number;
}

export type Admission =
  | { readonly ok: true; readonly reserved: number; readonly release: () => void }
  | { readonly ok: false; readonly status: 413 | 503; readonly outcome: 'too_large' | 'overloaded'; readonly message: string };

export class BodyBudget {
  readonly #limits: BodyBudgetLimits;
  /** What large bodies may hold together: the budget less the reserve for ordinary ones. */
  readonly #largeLimit: number;
  #held = 0;
  #heldLarge = 0;

  constructor(limits: BodyBudgetLimits) {
    this.#limits = limits;
    this.#largeLimit = Math.floor(limits.maxInFlightBytes * (1 - ORDINARY_RESERVE_FRACTION));
  }

  /** Bytes reserved now, by all requests. */
  get held(): number {
    return this.#held;
  }

  /**
   * Reserves room for one body. `declared` is the request's Content-Length, undefined for a chunked
   * body (it reserves maxRequestBytes, the most it may grow to before it is refused with 413).
   */
  admit(declared: number | undefined): Admission {
    const { maxRequestBytes, maxInFlightBytes } = this.#limits;
    if (declared !== undefined && declared > maxRequestBytes) {
      return { ok: false, status: 413, outcome: 'too_large', message: `request body of ${declared} bytes exceeds the limit of ${maxRequestBytes} bytes` };
    }
    const bytes = declared ?? maxRequestBytes;
    const large = bytes > ORDINARY_BODY_BYTES;
    if (this.#held + bytes > maxInFlightBytes || (large && this.#heldLarge + bytes > this.#largeLimit)) {
      const what = declared === undefined ? 'a body of unknown length' : `a body of ${declared} bytes`;
      return {
        ok: false,
        status: 503,
        outcome: 'overloaded',
        message: `overloaded: ${this.#held} bytes of request bodies in flight; ${what} does not fit in ${large ? `the ${this.#largeLimit} bytes for bodies over ${ORDINARY_BODY_BYTES} bytes` : `maxInFlightBytes (${maxInFlightBytes})`}`,
      };
    }
    this.#held += bytes;
    if (large) this.#heldLarge += bytes;
    let released = false;
    return {
      ok: true,
      reserved: bytes,
      release: () => {
        if (released) return;
        released = true;
        this.#held -= bytes;
        if (large) this.#heldLarge -= bytes;
      },
    };
  }
}
