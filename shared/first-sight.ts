/**
 * Which messages are new: the sidecar repeats its work every scrape, so a warning about the
 * target (a parse warning, a dropped series) would otherwise fill the log once a second.
 */
export class FirstSight {
  readonly #seen = new Set<string>();
  /** At most `limit` distinct messages are remembered, and so reported, over the process's life. */
  constructor(readonly limit: number) {}

  /** True the first time `key` is seen, while fewer than `limit` keys were. */
  first(key: string): boolean {
    if (this.#seen.has(key) || this.#seen.size >= this.limit) return false;
    this.#seen.add(key);
    return true;
  }
}
