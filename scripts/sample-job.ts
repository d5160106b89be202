/**
 * The sample Job of the demo and the tests: a small prom-client app that counts work items, some
 * of them failed, and observes how long each took. It writes its ground truth (what it really
 * counted) to a file after every increment, so even a SIGKILL leaves the truth behind.
 *
 * Environment: PORT, ITEMS (how many), DURATION_MS (spread over this long), SETTLE_MS (stay up
 * this long after the last increment, so the last value is scraped), EXIT_CODE, TRUTH_FILE,
 * RESTART_AT (restart the counters once, after this many items: a counter reset), ATTEMPT_FILE and
 * FAIL_ATTEMPTS (a container restarted in its pod: the run number is kept in ATTEMPT_FILE, the
 * first FAIL_ATTEMPTS runs exit 1, and TRUTH_FILE sums every run), ANNOUNCE_EXIT (print
 * `{"exiting": <ms since the epoch>}` on stdout just before exiting, for timing benchmarks),
 * OOM_AT_END (instead of exiting, allocate memory until the container's memory limit gets the
 * process killed: an OOM kill SETTLE_MS after the last increment).
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { Counter, Histogram, Registry } from 'prom-client';

const env = (name: string, fallback: string): string => process.env[name] ?? fallback;
const port = Number(env('PORT', '9100'));
const items = Number(env('ITEMS', '100'));
const durationMs = Number(env('DURATION_MS', '1000'));
const settleMs = Number(env('SETTLE_MS', '1500'));
const exitCode = Number(env('EXIT_CODE', '0'));
const truthFile = env('TRUTH_FILE', '');
const restartAt = Number(env('RESTART_AT', '-1'));
const startDelayMs = Number(env('METRICS_DELAY_MS', '0'));
const attemptFile = env('ATTEMPT_FILE', '');
const failAttempts = Number(env('FAIL_ATTEMPTS', '0'));
const attempt = attemptFile && existsSync(attemptFile) ? Number(readFileSync(attemptFile, 'utf8')) + 1 : 1;
if (attemptFile) writeFileSync(attemptFile, String(attempt));

const BUCKETS = [0.005, 0.01, 0.05, 0.1, 0.5];

const makeMetrics = (registry: Registry) => ({
  processed: new Counter({ name: 'demo_items_processed_total', help: 'Work items processed.', labelNames: ['outcome'], registers: [registry] }),
  latency: new Histogram({ name: 'demo_item_duration_seconds', help: 'Time per item.', buckets: BUCKETS, registers: [registry] }),
});

let registry = new Registry();
let metrics = makeMetrics(registry);
// The ground truth over the whole run, across counter restarts (and across the container's runs
// when it is restarted in its pod).
const truth: { ok: number; failed: number; observations: number; buckets: Record<string, number> } =
  attempt > 1 && truthFile
    ? JSON.parse(readFileSync(truthFile, 'utf8'))
    : { ok: 0, failed: 0, observations: 0, buckets: Object.fromEntries([...BUCKETS.map(String), '+Inf'].map((b) => [b, 0])) };
const writeTruth = (): void => {
  // One line per write: in a pod TRUTH_FILE=/dev/stdout leaves the whole history in the log.
  if (truthFile) writeFileSync(truthFile, JSON.stringify(truth) + '\n');
};
writeTruth();

const server = createServer((req, res) => {
  if (req.url !== '/metrics') {
    res.writeHead(404).end();
    return;
  }
  void registry.metrics().then((body) => res.writeHead(200, { 'content-type': registry.contentType }).end(body));
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
if (startDelayMs > 0) await sleep(startDelayMs);
await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));

// Deterministic pseudo-randomness per job, so a run can be repeated.
let seed = port * 7919 + attempt;
const random = (): number => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);

const gap = items > 0 ? durationMs / items : 0;
for (let i = 0; i < items; i++) {
  if (i === restartAt) {
    // A process restart inside the pod: the counters start again from zero. Like an exit, it
    // comes SETTLE_MS after the last increment, so that increment has been scraped.
    await sleep(settleMs);
    registry = new Registry();
    metrics = makeMetrics(registry);
  }
  const failed = random() < 0.1;
  const seconds = random() * 0.2;
  metrics.processed.inc({ outcome: failed ? 'failed' : 'ok' });
  metrics.latency.observe(seconds);
  if (failed) truth.failed++;
  else truth.ok++;
  truth.observations++;
  for (const b of BUCKETS) if (seconds <= b) truth.buckets[String(b)] = (truth.buckets[String(b)] ?? 0) + 1;
  truth.buckets['+Inf'] = (truth.buckets['+Inf'] ?? 0) + 1;
  writeTruth();
  if (gap > 0) await sleep(gap);
}
await sleep(settleMs);
if (env('OOM_AT_END', '') !== '') {
  // Buffers live outside V8's heap, so no heap limit stops this first: only the kernel's OOM
  // killer, at the cgroup's memory limit. Filled, so every page is really used.
  const hog: Buffer[] = [];
  for (;;) {
    hog.push(Buffer.alloc(8 * 2 ** 20, 1));
    await sleep(5);
  }
}
server.close();
if (env('ANNOUNCE_EXIT', '') !== '') process.stdout.write(JSON.stringify({ exiting: Date.now() }) + '\n');
process.exit(attempt <= failAttempts ? 1 : exitCode);
