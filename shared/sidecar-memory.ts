/**
 * The sidecar's memory budget, in one place: the memory limit the webhook injects, and the
 * input limits the sidecar derives from it so that its peak RSS stays under that limit with a
 * margin, whatever the target serves (docs/semantics.md, "The sidecar's memory"). The webhook's
 * default limit (webhook/config.ts), the sidecar's body, series and sample limits
 * (sidecar/sidecar.ts), and the V8 heap cap of the image's ENTRYPOINT (Dockerfile.sidecar,
 * SIDECAR_NODE_FLAGS in scripts/local-pod.ts) all come from here; bench/sidecar-memory.ts
 * measures the peak RSS at each limit.
 *
 * The per-unit costs were measured on Node 20 (heap after a full GC, and the peak RSS of the
 * bench's rows), each rounded up; the runtime and the margin were re-derived on Node 24, the
 * images' runtime (docs/benchmarks.md "Sidecar memory at its limits").
 */

const MiB = 2 ** 20;

export interface SidecarMemory {
  /** The container memory limit, as the webhook injects it. */
  readonly limit: string;
  readonly limitBytes: number;
  /** What the derivation lets the sidecar use: the limit less the margin. */
  readonly budgetBytes: number;
  /** Largest scrape body accepted; a larger one is refused while it is read. */
  readonly maxBodyBytes: number;
  /** Most series kept over the pod's life; new ones beyond are dropped and counted. */
  readonly maxSeries: number;
  /** Most characters of metric and label names and values kept over all series. */
  readonly maxLabelChars: number;
  /** Most samples and families in one scrape (the parser's limits). */
  readonly maxSamples: number;
  readonly maxFamilies: number;
  /** V8's old-space cap (`--max-old-space-size`), so it collects hard before the kernel kills. */
  readonly heapMiB: number;
}

/**
 * Node.js with the sidecar's modules loaded, outside the old-space heap the derivation plans. On
 * Node 24 the sidecar at rest peaks at 57 MiB (bench/sidecar-memory.ts, "10 counter series"; 51 on
 * Node 20), and V8's young generation, code space and the sockets' buffers grow some more under
 * load: the body-limit row peaks at 105–106 MiB (two runs), 66 beyond its heap cap and body.
 * Those runs predate the image's `--no-allocation-site-pretenuring --max-opt=2`, which bring the
 * two rows to 56 and 102 MiB; the runtime keeps the higher measurement, so that is spare margin.
 */
export const RUNTIME_BYTES = 66 * MiB;
/**
 * The part of the limit never planned for: malloc fragmentation, kernel accounting, measurement
 * error. 22 MiB of the 128Mi (a quarter, 32 MiB, on Node 20, whose runtime took 10 MiB less), so
 * that on Node 24 the body, series and heap limits stay those of Node 20 inside the same limit.
 */
export const MARGIN = 22 / 128;
/**
 * V8 needs room beyond the live heap to work: with live data at this share of its old-space cap
 * it still collects in good time; above it, it collects ever more often and would at last abort.
 */
export const LIVE_SHARE_OF_HEAP = 0.75;
/** One series kept: its state, labels, keys and encoded labels (~1.7 KB), and its share of one delivery's plan and request (~0.9 KB). */
export const BYTES_PER_SERIES = 2_600;
/** A kept label character: two bytes when the string is not Latin-1. */
export const BYTES_PER_LABEL_CHAR = 2;
/** One parsed sample: its object, label array and pairs (the strings are slices of the body). */
export const BYTES_PER_SAMPLE = 300;

/**
 * The limits for a container memory limit of `limitMiB`:
 *
 *   budget      = limit × (1 − MARGIN)
 *   body        = (budget − runtime) / 20, in whole MiB: the read buffer, outside V8's heap
 *   heap cap    = budget − runtime − body: what V8's heap may grow to (`--max-old-space-size`)
 *   live        = heap cap × LIVE_SHARE_OF_HEAP, shared by
 *     the body as text  (2 bytes a character at worst),
 *     kept label text   (an eighth of the live heap),
 *     one scrape's samples (twice the series limit: `_created` lines, duplicates),
 *     and the series    (what is left, in thousands).
 *
 * So a pod at every limit at once still peaks under the budget: runtime + heap cap + body.
 */
export function deriveSidecarMemory(limitMiB: number): SidecarMemory {
  const limitBytes = limitMiB * MiB;
  const budgetBytes = Math.floor(limitBytes * (1 - MARGIN));
  const room = budgetBytes - RUNTIME_BYTES;
  const maxBodyBytes = Math.floor(room / 20 / MiB) * MiB;
  if (maxBodyBytes < MiB) throw new RangeError(`a sidecar memory limit of ${limitMiB}Mi leaves too little beyond the Node.js runtime (${RUNTIME_BYTES / MiB} MiB) and the margin`);
  const heapBytes = room - maxBodyBytes;
  const live = heapBytes * LIVE_SHARE_OF_HEAP;
  const maxLabelChars = Math.floor(live / 8 / BYTES_PER_LABEL_CHAR);
  const rest = live - 2 * maxBodyBytes - maxLabelChars * BYTES_PER_LABEL_CHAR;
  const maxSeries = Math.floor(rest / (BYTES_PER_SERIES + 2 * BYTES_PER_SAMPLE) / 1_000) * 1_000;
  return {
    limit: `${limitMiB}Mi`,
    limitBytes,
    budgetBytes,
    maxBodyBytes,
    maxSeries,
    maxLabelChars,
    maxSamples: 2 * maxSeries,
    maxFamilies: maxSeries,
    heapMiB: Math.floor(heapBytes / MiB),
  };
}

/** The shipped budget: the webhook injects 128Mi (manifests/base/webhook-settings.yaml). */
export const SIDECAR_MEMORY: SidecarMemory = deriveSidecarMemory(128);
