/**
 * Which outcome events still have to be delivered: pure bookkeeping, no clock of its own.
 *
 * An event may be delivered as often as it is seen, but only while the aggregator still remembers
 * its series: within `windowMs` of the event (docs/outcomes.md "Exactly once"). Inside the window a
 * repeat is harmless (the same samples, added as 0); past it, a repeat would count again, so an
 * older event is never sent, only counted as too old.
 */
import type { OutcomeEvent } from './outcomes.ts';

export interface Offer {
  /** Newly queued. */
  readonly queued: number;
  /** Older than the window: counted before (by this or another recorder), or missed while none ran. */
  readonly tooOld: number;
}

export class Pending {
  /** Queued, by id: the latest version of each event. */
  readonly #queue = new Map<string, OutcomeEvent>();
  /** Delivered ids, with the time after which the event is too old anyway. */
  readonly #delivered = new Map<string, number>();

  constructor(private readonly windowMs: number) {}

  get size(): number {
    return this.#queue.size;
  }

  offer(events: readonly OutcomeEvent[], nowMs: number): Offer {
    let queued = 0;
    let tooOld = 0;
    for (const e of events) {
      if (this.#delivered.has(e.id) || this.#queue.has(e.id)) continue;
      if (e.atMs < nowMs - this.windowMs) {
        tooOld++;
        continue;
      }
      this.#queue.set(e.id, e);
      queued++;
    }
    return { queued, tooOld };
  }

  /**
   * Up to `max` queued events in the order they were first offered (a Map keeps insertion order:
   * no sort of a queue that can hold tens of thousands after a restart); they stay queued until
   * `delivered`, or `prune` gives them up.
   */
  take(max: number): OutcomeEvent[] {
    const out: OutcomeEvent[] = [];
    for (const e of this.#queue.values()) {
      if (out.length >= max) break;
      out.push(e);
    }
    return out;
  }

  delivered(events: readonly OutcomeEvent[]): void {
    for (const e of events) {
      this.#queue.delete(e.id);
      this.#delivered.set(e.id, e.atMs + this.windowMs);
    }
  }

  /**
   * Drops what is past the window: delivered ids (no repeat can come in time any more) and queued
   * events that could not be delivered in time. Returns the queued events given up.
   */
  prune(nowMs: number): OutcomeEvent[] {
    for (const [id, until] of this.#delivered) if (until < nowMs) this.#delivered.delete(id);
    const lost: OutcomeEvent[] = [];
    for (const [id, e] of this.#queue) {
      if (e.atMs < nowMs - this.windowMs) {
        this.#queue.delete(id);
        lost.push(e);
      }
    }
    return lost;
  }
}
