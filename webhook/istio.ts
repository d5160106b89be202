/**
 * Istio's metrics merging rewrites a pod's `prometheus.io/*` annotations to its own agent
 * (`:15020/stats/prometheus`, app and Envoy metrics merged) and keeps the application's values as
 * JSON in the proxy's ISTIO_PROMETHEUS_ANNOTATIONS env (istio pkg/kube/inject `applyPrometheusMerge`,
 * https://istio.io/latest/docs/ops/integrations/prometheus/#option-1-metrics-merging).
 *
 * Mutating webhooks are called in the order of their configurations' names, so
 * `istio-sidecar-injector` runs before `jobmetrics`: the sidecar would scrape Envoy's hundreds of
 * series along with the job's. This restores what the application asked for. `jobmetrics.io/*`
 * annotations are untouched: they always win.
 */
import { PROMETHEUS_ANNOTATION } from '../shared/names.ts';
import { allContainers, type RawPod } from './pod.ts';

export const ISTIO_PROXY = 'istio-proxy';
export const ISTIO_PROMETHEUS_ENV = 'ISTIO_PROMETHEUS_ANNOTATIONS';
/** The istio-agent port that serves the merged metrics. */
export const ISTIO_MERGED_METRICS_PORT = '15020';

/** The pod's annotations with Istio's metrics-merging rewrite undone, or the same map when there is none. */
export function annotationsBeforeIstioMerge(pod: RawPod): Readonly<Record<string, string>> {
  const annotations = pod.metadata?.annotations ?? {};
  if (annotations[PROMETHEUS_ANNOTATION.port] !== ISTIO_MERGED_METRICS_PORT) return annotations;
  const proxy = allContainers(pod).find((c) => c.name === ISTIO_PROXY);
  if (!proxy) return annotations;
  const env = Array.isArray(proxy['env']) ? (proxy['env'] as unknown[]) : [];
  const entry = env.find(
    (e): e is { name: string; value?: unknown } =>
      typeof e === 'object' && e !== null && (e as { name?: unknown }).name === ISTIO_PROMETHEUS_ENV,
  );
  // Istio rewrites even pods without prometheus.io annotations (scrape defaults to true); then
  // there is no application value to restore and named ports decide.
  let original: unknown = {};
  if (entry && typeof entry.value === 'string') {
    try {
      original = JSON.parse(entry.value);
    } catch {
      return annotations;
    }
  }
  if (typeof original !== 'object' || original === null) return annotations;
  const o = original as { port?: unknown; path?: unknown; scheme?: unknown };
  const out: Record<string, string> = { ...annotations };
  // Istio writes "" for what the application did not set; unset means the default applies.
  for (const [key, value] of [
    [PROMETHEUS_ANNOTATION.port, o.port],
    [PROMETHEUS_ANNOTATION.path, o.path],
    [PROMETHEUS_ANNOTATION.scheme, o.scheme],
  ] as const) {
    if (typeof value === 'string' && value !== '') out[key] = value;
    else delete out[key];
  }
  return out;
}
