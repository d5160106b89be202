/**
 * Who owns a pod's Job, asked of the API server: `GET /apis/batch/v1/namespaces/{ns}/jobs/{name}`
 * and its controller ownerReference. Cached (a Job's owner never changes), shared between the pods
 * of one Job that arrive together (a Job with parallelism 100 creates 100 pods at once), bounded by
 * a short timeout, and never throwing: any failure is an `unavailable` answer, after which the
 * CronJob name pattern decides (webhook/workload.ts). Failures are remembered briefly so an API
 * outage costs one timeout per Job, not one per pod.
 */
import { AnswerCache } from '../shared/answer-cache.ts';
import type { JobOwnerLookup, JobRef } from './workload.ts';

export interface JobOwnerReference {
  readonly apiVersion?: string;
  readonly kind?: string;
  readonly name?: string;
  readonly controller?: boolean;
}

/** The Job as far as it matters; `null` when the API answers 404. */
export type JobFetch = (
  namespace: string,
  name: string,
  signal: AbortSignal,
) => Promise<{ readonly uid?: string; readonly ownerReferences: readonly JobOwnerReference[] } | null>;

export type LookupResult = 'hit' | 'found' | 'not-found' | 'uid-mismatch' | 'timeout' | 'error';

export interface JobOwnerCacheOptions {
  readonly fetch: JobFetch;
  readonly ttlMs: number;
  readonly timeoutMs: number;
  /** How long a failed lookup is remembered. */
  readonly failureTtlMs?: number;
  readonly maxEntries?: number;
  readonly now?: () => number;
  /** For metrics and logs. */
  readonly onResult?: (result: LookupResult, namespace: string, job: string, error?: unknown) => void;
}

export class JobOwnerCache {
  readonly #opts: JobOwnerCacheOptions;
  readonly #answers: AnswerCache<JobOwnerLookup>;

  constructor(opts: JobOwnerCacheOptions) {
    this.#opts = opts;
    this.#answers = new AnswerCache({ maxEntries: opts.maxEntries ?? 10_000, now: opts.now ?? Date.now });
  }

  get size(): number {
    return this.#answers.size;
  }

  lookup(namespace: string, job: JobRef): Promise<JobOwnerLookup> {
    const key = `${namespace}/${job.name}/${job.uid ?? ''}`;
    const known = this.#answers.get(key);
    if (known !== undefined) {
      this.#opts.onResult?.('hit', namespace, job.name);
      return Promise.resolve(known);
    }
    return this.#answers.shared(key, async () => {
      const { answer, ok } = await this.#fetch(namespace, job);
      this.#answers.remember(key, answer, ok ? this.#opts.ttlMs : (this.#opts.failureTtlMs ?? 5_000));
      return answer;
    });
  }

  async #fetch(namespace: string, job: JobRef): Promise<{ answer: JobOwnerLookup; ok: boolean }> {
    const controller = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => {
        controller.abort(new Error(`timed out after ${this.#opts.timeoutMs} ms`));
        resolve('timeout');
      }, this.#opts.timeoutMs);
    });
    try {
      const got = await Promise.race([this.#opts.fetch(namespace, job.name, controller.signal), timeout]);
      if (got === 'timeout') {
        this.#opts.onResult?.('timeout', namespace, job.name);
        return { answer: { state: 'unavailable', reason: `GET job ${namespace}/${job.name} timed out after ${this.#opts.timeoutMs} ms` }, ok: false };
      }
      if (got === null) {
        this.#opts.onResult?.('not-found', namespace, job.name);
        return { answer: { state: 'unavailable', reason: `job ${namespace}/${job.name} not found` }, ok: false };
      }
      // A Job deleted and recreated under the same name: this pod belongs to the old one.
      if (job.uid !== undefined && got.uid !== undefined && got.uid !== job.uid) {
        this.#opts.onResult?.('uid-mismatch', namespace, job.name);
        return { answer: { state: 'unavailable', reason: `job ${namespace}/${job.name} has uid ${got.uid}, the pod's owner was ${job.uid}` }, ok: true };
      }
      const owner = got.ownerReferences.find((o) => o.controller === true && o.kind === 'CronJob' && (o.apiVersion ?? '').startsWith('batch/'));
      this.#opts.onResult?.('found', namespace, job.name);
      return { answer: { state: 'found', cronJob: owner?.name ?? null }, ok: true };
    } catch (cause) {
      this.#opts.onResult?.('error', namespace, job.name, cause);
      const message = cause instanceof Error ? cause.message : String(cause);
      return { answer: { state: 'unavailable', reason: `GET job ${namespace}/${job.name} failed: ${message}` }, ok: false };
    } finally {
      clearTimeout(timer);
    }
  }

}
