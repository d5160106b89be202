/** Running sample-job pods against a real aggregator stack, for the integration tests. */
import { join } from 'node:path';
import {
  freePort,
  readTruth,
  sampleJob,
  sidecarEnv,
  startLocalPod,
  type GroundTruth,
  type LocalPod,
  type LocalPodOptions,
  type PodResult,
  type SampleJobOptions,
} from '../../scripts/local-pod.ts';

export interface SamplePodOptions {
  readonly dir: string;
  readonly remoteWriteUrl: string;
  readonly namespace: string;
  readonly job: string;
  readonly pod: string;
  readonly items: number;
  readonly durationMs: number;
  readonly settleMs?: number;
  readonly exitCode?: number;
  readonly restartAt?: number;
  readonly metricsDelayMs?: number;
  /** Extra sidecar environment (fast intervals for tests). */
  readonly sidecar?: Readonly<Record<string, string>>;
  /** Point the sidecar at this URL instead of the job's own endpoint. */
  readonly scrapeUrl?: string;
  /** Native mode's order: the sidecar starts first, the job this long after. */
  readonly sidecarFirstMs?: number;
  /** The main container restarted in its pod: its first runs exit 1 (restartPolicy OnFailure). */
  readonly failAttempts?: number;
  /** The kubelet's restarts (scripts/local-pod.ts). */
  readonly mainRestartPolicy?: 'Never' | 'OnFailure';
  readonly sidecarRestartPolicy?: 'Never' | 'Always';
  readonly restartDelayMs?: number;
  /** Other containers, kubelet-like mounts, the sidecar's uid (scripts/local-pod.ts). */
  readonly extraContainers?: LocalPodOptions['extraContainers'];
  readonly kubeletMounts?: boolean;
  readonly sidecarUid?: number;
}

export interface SamplePod {
  readonly pod: LocalPod;
  readonly truthFile: string;
  /** Resolves when both containers have exited. */
  readonly done: Promise<{ result: PodResult; truth: GroundTruth }>;
}

/** Fast but realistic sidecar settings for tests: 200 ms scrapes, 1 s pushes. */
export const FAST_SIDECAR = { JOBMETRICS_INTERVAL: '200ms', JOBMETRICS_PUSH_INTERVAL: '1s', JOBMETRICS_FLUSH_TIMEOUT: '5s' } as const;

export async function startSamplePod(o: SamplePodOptions): Promise<SamplePod> {
  const port = await freePort();
  const truthFile = join(o.dir, `${o.pod}.truth.json`);
  const job: SampleJobOptions = {
    port,
    items: o.items,
    durationMs: o.durationMs,
    truthFile,
    ...(o.settleMs !== undefined ? { settleMs: o.settleMs } : {}),
    ...(o.exitCode !== undefined ? { exitCode: o.exitCode } : {}),
    ...(o.restartAt !== undefined ? { restartAt: o.restartAt } : {}),
    ...(o.metricsDelayMs !== undefined ? { metricsDelayMs: o.metricsDelayMs } : {}),
    ...(o.failAttempts !== undefined ? { failAttempts: o.failAttempts } : {}),
  };
  const env = sidecarEnv({ port, remoteWriteUrl: o.remoteWriteUrl, namespace: o.namespace, job: o.job, pod: o.pod, extra: { ...FAST_SIDECAR, ...o.sidecar } });
  if (o.scrapeUrl) env['JOBMETRICS_SCRAPE_URL'] = o.scrapeUrl;
  const pod = startLocalPod({
    name: o.pod,
    dir: o.dir,
    main: sampleJob(job),
    sidecarEnv: env,
    ...(o.sidecarFirstMs !== undefined ? { sidecarFirstMs: o.sidecarFirstMs } : {}),
    ...(o.mainRestartPolicy !== undefined ? { mainRestartPolicy: o.mainRestartPolicy } : {}),
    ...(o.sidecarRestartPolicy !== undefined ? { sidecarRestartPolicy: o.sidecarRestartPolicy } : {}),
    ...(o.restartDelayMs !== undefined ? { restartDelayMs: o.restartDelayMs } : {}),
    ...(o.extraContainers !== undefined ? { extraContainers: o.extraContainers } : {}),
    ...(o.kubeletMounts !== undefined ? { kubeletMounts: o.kubeletMounts } : {}),
    ...(o.sidecarUid !== undefined ? { sidecarUid: o.sidecarUid } : {}),
  });
  const done = pod.result.then((result) => ({ result, truth: readTruth(truthFile) }));
  return { pod, truthFile, done };
}

export const itemsCounted = (t: GroundTruth): number => t.ok + t.failed;

/**
 * What Prometheus counted for a counter, the way `increase()` means it but without its
 * extrapolation: the sum over every output series of its first value (a series is born from 0)
 * and each later increase, a decrease being a reset that adds the new value.
 */
export async function countedByPrometheus(prometheusUrl: string, selector: string, window = '30m'): Promise<{ total: number; resets: number; histories: number[][] }> {
  const url = `${prometheusUrl}/api/v1/query?query=${encodeURIComponent(`${selector}[${window}]`)}`;
  const res = await fetch(url);
  const body = (await res.json()) as { status: string; data?: { result: Array<{ values: Array<[number, string]> }> }; error?: string };
  if (body.status !== 'success' || !body.data) throw new Error(`query ${selector}: ${body.error ?? res.status}`);
  let total = 0;
  let resets = 0;
  const histories: number[][] = [];
  for (const series of body.data.result) {
    const values = series.values.map(([, v]) => Number(v));
    histories.push(values);
    let prev = 0;
    for (const v of values) {
      if (v >= prev) total += v - prev;
      else {
        total += v;
        resets++;
      }
      prev = v;
    }
  }
  return { total, resets, histories };
}
