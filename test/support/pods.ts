/** Running sample-job pods against a real aggregator stack, for the integration tests. */
import { join } from 'node:path';
import { freePort, readTruth, sampleJob, sidecarEnv, startLocalPod, type GroundTruth, type LocalPod, type PodResult, type SampleJobOptions } from '../../scripts/local-pod.ts';

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
  };
  const env = sidecarEnv({ port, remoteWriteUrl: o.remoteWriteUrl, namespace: o.namespace, job: o.job, pod: o.pod, extra: { ...FAST_SIDECAR, ...o.sidecar } });
  if (o.scrapeUrl) env['JOBMETRICS_SCRAPE_URL'] = o.scrapeUrl;
  const pod = startLocalPod({ name: o.pod, dir: o.dir, main: sampleJob(job), sidecarEnv: env });
  const done = pod.result.then((result) => ({ result, truth: readTruth(truthFile) }));
  return { pod, truthFile, done };
}

export const itemsCounted = (t: GroundTruth): number => t.ok + t.failed;
