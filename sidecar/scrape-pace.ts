/**
 * How long to wait before the next scrape: the pace of the scrape loop.
 *
 * What a job counts after the last scrape before it exits is lost: its `/metrics` goes with it
 * (docs/semantics.md "Tail loss"). A shorter wait loses less and costs more CPU, and the cost of a
 * scrape grows with the size of the exposition. So the pace follows the measured cost:
 *
 * - until a scrape succeeds, every 100 ms (the sidecar often starts before the main container
 *   listens), then ramping up from 100 ms, doubling, so a job shorter than one interval is still
 *   scraped after its first increments;
 * - then every `fastMs` (200 ms as shipped) while scraping that often takes at most `cpuShare`
 *   of one core (1 %): the sidecar's own CPU time per scrape, averaged, × 1 / `cpuShare`;
 * - never slower than `intervalMs` (the `jobmetrics.io/interval` a pod asks for, 1 s by default),
 *   whatever a scrape costs: an exposition so large that 1 s of scrapes costs more than the
 *   share is scraped every interval, as before.
 *
 * docs/benchmarks.md "Tail loss" gives the loss and the CPU of each pace side by side.
 */

export interface PaceSettings {
  /** The longest wait between two scrapes. */
  readonly intervalMs: number;
  /** The shortest wait once the ramp is done (≥ intervalMs turns the fast pace off). */
  readonly fastMs: number;
  /** The share of one core the scrapes may use when faster than the interval (0.01 = 1 %). */
  readonly cpuShare: number;
}

/** The first waits: 100 ms, then doubling with each successful scrape. */
const RAMP_START_MS = 100;

/**
 * The wait after `succeeded` successful scrapes, when one scrape costs `scrapeCpuMs` of CPU
 * (undefined before any was measured).
 */
export function scrapeDelayMs(succeeded: number, scrapeCpuMs: number | undefined, s: PaceSettings): number {
  const ramp = RAMP_START_MS * 2 ** Math.max(0, Math.min(succeeded - 1, 16));
  const affordable = scrapeCpuMs === undefined || s.cpuShare <= 0 ? s.intervalMs : scrapeCpuMs / s.cpuShare;
  const steady = Math.min(s.intervalMs, Math.max(s.fastMs, affordable));
  return Math.min(ramp, steady);
}

/**
 * The cost of a scrape, as an exponentially weighted mean of the CPU time each one took, so one
 * garbage collection landing in a scrape does not halve the pace for good.
 */
export class ScrapeCost {
  #meanMs: number | undefined;
  constructor(private readonly weight = 0.25) {}

  /** Adds one scrape's CPU time (user + system, ms). */
  observe(cpuMs: number): void {
    if (!Number.isFinite(cpuMs) || cpuMs < 0) return;
    this.#meanMs = this.#meanMs === undefined ? cpuMs : this.#meanMs + this.weight * (cpuMs - this.#meanMs);
  }

  get meanMs(): number | undefined {
    return this.#meanMs;
  }
}
