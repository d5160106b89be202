/**
 * Parsing and validation of the pod annotations (README.md "Annotations and labels").
 * Pure: takes the annotation map, returns values or the first error naming the annotation,
 * its value and what is allowed, so the webhook can put it verbatim into `jobmetrics.io/status`.
 */
import { formatDuration, parseBoundedDuration } from './duration.ts';
import { ANNOTATION, DEFAULT_METRICS_PATH, DEFAULT_SCHEME, INTERVAL, PROMETHEUS_ANNOTATION } from './names.ts';

export type Scheme = 'http' | 'https';

/** A metrics port as an annotation names it: a number, or a container port's name. */
export type PortRef =
  | { readonly kind: 'number'; readonly port: number; readonly from: string }
  | { readonly kind: 'name'; readonly name: string; readonly from: string };

export interface TargetAnnotations {
  /** Absent when neither `jobmetrics.io/port` nor `prometheus.io/port` is set. */
  readonly port?: PortRef;
  readonly path: string;
  readonly scheme: Scheme;
  /** Absent when `jobmetrics.io/interval` is not set: the cluster default applies. */
  readonly interval?: string;
  readonly container?: string;
  readonly workload?: string;
}

export interface AnnotationError {
  readonly annotation: string;
  readonly value: string;
  readonly message: string;
}

export type AnnotationResult =
  | { readonly ok: true; readonly value: TargetAnnotations }
  | { readonly ok: false; readonly error: AnnotationError };

/** `annotation "<value>": <why>` — short enough for a status annotation and a log line. */
export function describeAnnotationError(e: AnnotationError): string {
  return `invalid annotation ${e.annotation}="${truncate(e.value, 64)}": ${e.message}`;
}

// IANA_SVC_NAME, the rule for a container port's name (k8s.io/apimachinery validation.IsValidPortName).
const PORT_NAME = /^(?=.{1,15}$)(?=.*[a-z])[a-z0-9]+(?:-[a-z0-9]+)*$/;
// DNS-1123 label, the rule for a container's name.
const DNS1123_LABEL = /^(?=.{1,63}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
// A URL path with an optional query; no spaces, no control characters, no fragment.
const URL_PATH = /^\/[\x21-\x7e]*$/;
const MAX_PATH = 1024;
// A Kubernetes label value (k8s.io/apimachinery validation.IsValidLabelValue): at most 63 of
// A-Z a-z 0-9 - _ ., starting and ending with a letter or digit. The names the workload takes by
// default fit it already (a Job's name is the value of its pods' job-name label, a CronJob's name
// has at most 52 characters), so the annotation gets the same room as they have, and the value
// can be used as a label anywhere (a Prometheus label value, a Kubernetes label, a selector).
const MAX_WORKLOAD = 63;
const LABEL_VALUE = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;

// A number in any notation JSON or JavaScript would read (-5, 80.5, 1e20, +80): a number, so never
// a port name, even where IANA_SVC_NAME would allow it ("1e20" has a letter).
const NUMBER_LIKE = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?$/i;

/** A TCP port: an integer from 1 to 65535 (k8s.io/apimachinery validation.IsValidPortNum). */
export function isPortNumber(n: unknown): n is number {
  return typeof n === 'number' && Number.isInteger(n) && n >= 1 && n <= 65535;
}

export function parsePortValue(value: string, from: string): PortRef | string {
  const v = value.trim();
  if (/^\d+$/.test(v)) {
    const port = Number(v);
    if (isPortNumber(port)) return { kind: 'number', port, from };
    return 'must be a port number 1…65535 or a container port name';
  }
  if (NUMBER_LIKE.test(v)) return 'must be an integer port number 1…65535 or a container port name';
  if (PORT_NAME.test(v)) return { kind: 'name', name: v, from };
  return 'must be a port number 1…65535 or a container port name (IANA_SVC_NAME: up to 15 of a-z, 0-9, -)';
}

export function parseTargetAnnotations(annotations: Readonly<Record<string, string>>): AnnotationResult {
  const fail = (annotation: string, message: string): AnnotationResult => ({
    ok: false,
    error: { annotation, value: annotations[annotation] ?? '', message },
  });
  // The first of the names that is set wins; an invalid jobmetrics.io/* value is not papered over
  // by a valid prometheus.io/* one, the user asked for that value.
  const pick = (names: readonly string[]): { name: string; value: string } | undefined => {
    for (const name of names) {
      const value = annotations[name];
      if (value !== undefined) return { name, value };
    }
    return undefined;
  };

  let port: PortRef | undefined;
  const portAnn = pick([ANNOTATION.port, PROMETHEUS_ANNOTATION.port]);
  if (portAnn) {
    const r = parsePortValue(portAnn.value, portAnn.name);
    if (typeof r === 'string') return fail(portAnn.name, r);
    port = r;
  }

  let path = DEFAULT_METRICS_PATH;
  const pathAnn = pick([ANNOTATION.path, PROMETHEUS_ANNOTATION.path]);
  if (pathAnn) {
    const v = pathAnn.value.trim();
    if (v.length > MAX_PATH) return fail(pathAnn.name, `must be at most ${MAX_PATH} characters`);
    if (!URL_PATH.test(v) || v.includes('#')) {
      return fail(pathAnn.name, 'must be a URL path starting with "/" (a query is allowed; no spaces or fragment)');
    }
    path = v;
  }

  let scheme: Scheme = DEFAULT_SCHEME;
  const schemeAnn = pick([ANNOTATION.scheme, PROMETHEUS_ANNOTATION.scheme]);
  if (schemeAnn) {
    const v = schemeAnn.value.trim().toLowerCase();
    if (v !== 'http' && v !== 'https') return fail(schemeAnn.name, 'must be http or https');
    scheme = v;
  }

  let interval: string | undefined;
  const intervalValue = annotations[ANNOTATION.interval];
  if (intervalValue !== undefined) {
    const r = parseBoundedDuration(intervalValue, INTERVAL);
    if (!r.ok) return fail(ANNOTATION.interval, r.error);
    interval = formatDuration(r.ms);
  }

  let container: string | undefined;
  const containerValue = annotations[ANNOTATION.container];
  if (containerValue !== undefined) {
    const v = containerValue.trim();
    if (!DNS1123_LABEL.test(v)) return fail(ANNOTATION.container, 'must be a container name (DNS-1123 label)');
    container = v;
  }

  let workload: string | undefined;
  const workloadValue = annotations[ANNOTATION.workload];
  if (workloadValue !== undefined) {
    const v = workloadValue.trim();
    // It becomes the `job` label of every series (an empty value would delete the label in
    // Prometheus) and the value of the sidecar's JOBMETRICS_JOB.
    if (v === '') return fail(ANNOTATION.workload, 'must not be empty');
    // The kubelet expands $(VAR) in an env value from the container's other variables
    // (https://kubernetes.io/docs/tasks/inject-data-application/define-interdependent-environment-variables/):
    // `$(JOBMETRICS_POD)` would give every pod a series of its own, never summed.
    if (v.includes('$(')) return fail(ANNOTATION.workload, 'must not contain "$(": the kubelet would expand it as a variable reference');
    if (v.length > MAX_WORKLOAD) return fail(ANNOTATION.workload, `must be at most ${MAX_WORKLOAD} characters (a Kubernetes label value)`);
    if (!LABEL_VALUE.test(v)) {
      return fail(ANNOTATION.workload, 'must be a Kubernetes label value: A-Z, a-z, 0-9, "-", "_" and ".", starting and ending with a letter or digit');
    }
    workload = v;
  }

  const value: TargetAnnotations = {
    path,
    scheme,
    ...(port !== undefined && { port }),
    ...(interval !== undefined && { interval }),
    ...(container !== undefined && { container }),
    ...(workload !== undefined && { workload }),
  };
  return { ok: true, value };
}

function truncate(s: string, max: number): string {
  return s.length <= max ? s : `${s.slice(0, max)}…`;
}
