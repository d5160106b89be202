/**
 * Frees the socket buffers a large scrape leaves behind. Node reads a response in chunks of its
 * own (64 KiB Buffers outside V8's heap); scrape.ts copies each into its reused body buffer, so
 * they are garbage at once, but V8 frees such memory only when it collects the small objects that
 * hold it, and a scrape allocates so little on the heap that it may not collect for dozens of
 * scrapes: measured, a refused 8 MiB body every 100 ms piled up ~35 MiB of dead buffers.
 * One young-generation collection after a large read (~1 ms with the 1 MiB semi-space of
 * `--max-semi-space-size=1`) keeps that garbage to one scrape's worth. `gc` exists only with
 * `--expose-gc`, which the image's ENTRYPOINT sets (SIDECAR_NODE_FLAGS in scripts/local-pod.ts);
 * without it this does nothing.
 */

/** Reads smaller than this leave too little behind to be worth a collection. */
export const COLLECT_AFTER_BYTES = 256 * 1024;

type Collect = (options: { type: 'minor' | 'major' }) => void;

export function releaseReadGarbage(bytesRead: number): void {
  const gc = (globalThis as { gc?: Collect }).gc;
  if (gc !== undefined && bytesRead >= COLLECT_AFTER_BYTES) gc({ type: 'minor' });
}
