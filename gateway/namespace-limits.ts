/**
 * Per-namespace limits before the aggregator (docs/gateway.md "Limits per namespace"): one
 * namespace's flood of series or samples must not take the aggregator down for every other.
 *
 * - **Series**: each namespace may have at most `maxSeries` live input series (seen within the
 *   staleness interval). A series already live always passes, so a capped namespace keeps its
 *   existing numbers exact; a new one beyond the cap is dropped.
 * - **Samples per second**: a token bucket per namespace (`samplesPerSecond`, holding up to
 *   `burstSeconds` of it, so a push every 10 s of a namespace's normal size passes whole). A
 *   request whose series all belong to one namespace (every sidecar's) and that finds the bucket
 *   short is refused whole with the wait until it would fit, for the sender to retry: its values
 *   are cumulative, so a later delivery loses nothing. In a request of several namespaces (the
 *   outcome recorder's), only the short namespaces' series are dropped.
 *
 * Drops are returned as data, by namespace and reason, for the caller to count. Pure: the caller
 * passes the time. The namespace is the series' `namespace` label.
 */
import type { RwSeries } from '../shared/remote-write.ts';
import { seriesKey } from '../shared/series-key.ts';

export interface LimitSettings {
  /** Live input series per namespace (0: no limit). */
  readonly maxSeries: number;
  /** Samples per second per namespace (0: no limit). */
  readonly samplesPerSecond: number;
  /** How many seconds of samples a bucket holds. */
  readonly burstSeconds: number;
  /** Per-namespace overrides of the two limits. */
  readonly overrides: ReadonlyMap<string, { readonly maxSeries?: number; readonly samplesPerSecond?: number }>;
  /** A series unseen this long no longer counts against its namespace. */
  readonly staleMs: number;
}

export type DropReason = 'series-limit' | 'rate-limit' | 'no-namespace';

export type LimitDecision =
  | { readonly refuse: false; readonly accepted: RwSeries[]; readonly acceptedKeys: string[]; readonly dropped: ReadonlyArray<{ namespace: string; reason: DropReason; series: number; samples: number }> }
  | { readonly refuse: true; readonly namespace: string; readonly retryAfterMs: number };

interface NamespaceState {
  /** Live series: a hash of the series key → last seen (ms). */
  readonly live: Map<number, number>;
  tokens: number;
  refilledAtMs: number;
}

/** FNV-1a, 32 bits: a number per series instead of its key string (a million keys cost ~100 MB). */
function hash(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

export class NamespaceLimits {
  readonly #state = new Map<string, NamespaceState>();

  constructor(private readonly settings: LimitSettings) {}

  /** Namespaces with state (for the gateway's own metrics). */
  get namespaces(): number {
    return this.#state.size;
  }

  liveSeries(namespace: string): number {
    return this.#state.get(namespace)?.live.size ?? 0;
  }

  /** Each namespace's live series count (for the gateway's own metrics). */
  *liveSeriesByNamespace(): IterableIterator<[namespace: string, series: number]> {
    for (const [ns, st] of this.#state) yield [ns, st.live.size];
  }

  /**
   * `keys[i]` is `seriesKey` of `series[i]` when the caller has it (the gateway computes each key
   * once, for this and for the birth ledger); the accepted series come back with their keys.
   */
  check(series: readonly RwSeries[], nowMs: number, keys?: readonly string[]): LimitDecision {
    const byNamespace = new Map<string, Array<{ s: RwSeries; key: string }>>();
    const dropped: Array<{ namespace: string; reason: DropReason; series: number; samples: number }> = [];
    series.forEach((s, i) => {
      const ns = s.labels.find((l) => l[0] === 'namespace')?.[1] ?? '';
      if (ns === '') {
        dropped.push({ namespace: '', reason: 'no-namespace', series: 1, samples: s.samples.length });
        return;
      }
      const entry = { s, key: keys?.[i] ?? seriesKey(s.labels) };
      const list = byNamespace.get(ns);
      if (list) list.push(entry);
      else byNamespace.set(ns, [entry]);
    });
    // Rate first: a refused request changes nothing, so it is decided before any series is counted.
    const short: string[] = [];
    for (const [ns, list] of byNamespace) {
      const rate = this.#limit(ns, 'samplesPerSecond');
      if (rate <= 0) continue;
      const st = this.#ns(ns, nowMs);
      const cap = rate * this.settings.burstSeconds;
      st.tokens = Math.min(cap, st.tokens + ((nowMs - st.refilledAtMs) / 1000) * rate);
      st.refilledAtMs = nowMs;
      const need = list.reduce((n, e) => n + e.s.samples.length, 0);
      if (need > st.tokens) {
        if (byNamespace.size === 1 && dropped.length === 0) {
          // Ask for the wait until the bucket holds this request; one larger than the bucket
          // can never fit, so it waits for a full bucket and then passes (tokens may go negative).
          const missing = Math.min(need, cap) - st.tokens;
          if (missing > 0) return { refuse: true, namespace: ns, retryAfterMs: Math.ceil((missing / rate) * 1000) };
        } else {
          short.push(ns);
          continue;
        }
      }
      st.tokens -= need;
    }
    const accepted: RwSeries[] = [];
    const acceptedKeys: string[] = [];
    for (const [ns, list] of byNamespace) {
      if (short.includes(ns)) {
        dropped.push({ namespace: ns, reason: 'rate-limit', series: list.length, samples: list.reduce((n, e) => n + e.s.samples.length, 0) });
        continue;
      }
      const max = this.#limit(ns, 'maxSeries');
      const st = this.#ns(ns, nowMs);
      let overSeries = 0;
      let overSamples = 0;
      for (const { s, key } of list) {
        const h = hash(key);
        if (st.live.has(h) || max <= 0 || st.live.size < max) {
          st.live.set(h, nowMs);
          accepted.push(s);
          acceptedKeys.push(key);
        } else {
          overSeries++;
          overSamples += s.samples.length;
        }
      }
      if (overSeries > 0) dropped.push({ namespace: ns, reason: 'series-limit', series: overSeries, samples: overSamples });
    }
    return { refuse: false, accepted, acceptedKeys, dropped };
  }

  /** Forgets series unseen for the staleness interval, and namespaces with nothing left. */
  expire(nowMs: number): void {
    for (const [ns, st] of this.#state) {
      for (const [h, seen] of st.live) if (nowMs - seen > this.settings.staleMs) st.live.delete(h);
      if (st.live.size === 0 && nowMs - st.refilledAtMs > this.settings.staleMs) this.#state.delete(ns);
    }
  }

  #limit(ns: string, which: 'maxSeries' | 'samplesPerSecond'): number {
    return this.settings.overrides.get(ns)?.[which] ?? this.settings[which];
  }

  #ns(ns: string, nowMs: number): NamespaceState {
    let st = this.#state.get(ns);
    if (!st) {
      st = { live: new Map(), tokens: this.#limit(ns, 'samplesPerSecond') * this.settings.burstSeconds, refilledAtMs: nowMs };
      this.#state.set(ns, st);
    }
    return st;
  }
}

/**
 * `JOBMETRICS_NAMESPACE_LIMITS`: `<namespace>=<series>/<samples per second>` entries, comma
 * separated, either number may be `-` for the default, e.g. `batch=200000/100000,sandbox=1000/-`.
 */
export function parseOverrides(text: string): { ok: true; overrides: Map<string, { maxSeries?: number; samplesPerSecond?: number }> } | { ok: false; error: string } {
  const overrides = new Map<string, { maxSeries?: number; samplesPerSecond?: number }>();
  for (const raw of text.split(',').map((x) => x.trim()).filter((x) => x !== '')) {
    const m = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?)=(\d+|-)\/(\d+|-)$/.exec(raw);
    if (!m?.[1]) return { ok: false, error: `"${raw}" must be <namespace>=<series>/<samples per second> (a number or - for each)` };
    const series = m[3] === '-' ? undefined : Number(m[3]);
    const rate = m[4] === '-' ? undefined : Number(m[4]);
    overrides.set(m[1], { ...(series !== undefined ? { maxSeries: series } : {}), ...(rate !== undefined ? { samplesPerSecond: rate } : {}) });
  }
  return { ok: true, overrides };
}
