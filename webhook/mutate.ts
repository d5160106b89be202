/**
 * Every injection decision, as one pure function over the raw pod (DESIGN.md "webhook/").
 * No I/O, no clock, no globals: what the decision depends on (settings, chosen mode, what the API
 * said about the Job's owner, the time for the CronJob name pattern) comes in through the context,
 * so the golden-file tests pin the whole behaviour.
 */
import { describeAnnotationError, parseTargetAnnotations, type PortRef, type TargetAnnotations } from '../shared/annotations.ts';
import {
  ANNOTATION,
  INJECT_DISABLED,
  INJECT_ENABLED,
  INJECT_LABEL,
  METRICS_PORT_NAMES,
  SIDECAR_CONTAINER,
  SIDECAR_ENV,
  STATUS_INJECTED,
  statusSkipped,
  type SidecarMode,
} from '../shared/names.ts';
import type { SidecarSettings } from './config.ts';
import { annotationsBeforeIstioMerge } from './istio.ts';
import { allContainers, type JsonValue, type RawContainer, type RawPod } from './pod.ts';
import { isJobPod, jobOf, workloadName, type JobOwnerLookup, type Workload } from './workload.ts';

export interface MutateContext {
  readonly sidecar: SidecarSettings;
  readonly mode: SidecarMode;
  /**
   * The namespace's labels when the caller knows them. The MutatingWebhookConfiguration's
   * namespaceSelector already filters server side, so this is normally absent and trusted.
   */
  readonly namespaceLabels?: Readonly<Record<string, string>>;
  /** What the API said about the owner of the pod's Job; absent when nobody asked. */
  readonly jobOwner?: JobOwnerLookup;
  /** Milliseconds since the epoch; only the CronJob name pattern looks at it. */
  readonly nowMs: number;
}

export const SKIP_REASONS = [
  'already-injected',
  'opted-out',
  'namespace-not-enabled',
  'not-a-job-pod',
  'host-pid',
  'share-process-namespace-false',
  'windows-pod',
  'invalid-annotation',
  'no-metrics-port',
  'no-workload-name',
] as const;
export type SkipReason = (typeof SKIP_REASONS)[number];

/** A skip is data: a bounded reason for metrics and a sentence for the status annotation and logs. */
export interface Skip {
  readonly reason: SkipReason;
  readonly message: string;
}

export interface Injection {
  readonly mode: SidecarMode;
  readonly scrapeUrl: string;
  readonly interval: string;
  readonly container: string;
  readonly workload: Workload;
}

export type MutateResult =
  | { readonly inject: true; readonly pod: RawPod; readonly injection: Injection }
  /** `pod` carries the skip status, except for already-injected pods, which come back untouched. */
  | { readonly inject: false; readonly pod: RawPod; readonly skip: Skip };

export function mutate(pod: RawPod, ctx: MutateContext): MutateResult {
  const decision = decide(pod, ctx);
  if ('skip' in decision) {
    // Re-invocation (reinvocationPolicy: IfNeeded) and pods that carry the sidecar from their
    // template must come back byte for byte, or the API server sees a change and calls again.
    if (decision.skip.reason === 'already-injected') return { inject: false, pod, skip: decision.skip };
    return { inject: false, pod: withStatus(pod, statusSkipped(decision.skip.message)), skip: decision.skip };
  }
  const out = withStatus(pod, STATUS_INJECTED);
  // shareProcessNamespace lets the sidecar see the main container's processes, and so its exit
  // (https://kubernetes.io/docs/tasks/configure-pod-container/share-process-namespace/).
  out.spec.shareProcessNamespace = true;
  const container = sidecarContainer(decision.injection, ctx);
  if (decision.injection.mode === 'native') {
    // Last init container: regular init containers before it run to completion first, and the
    // main containers start only after it has started (KEP-753). Other native sidecars (Istio,
    // Linkerd, Vault) keep their places.
    out.spec.initContainers = [...(out.spec.initContainers ?? []), container];
  } else {
    out.spec.containers = [...out.spec.containers, container];
  }
  return { inject: true, pod: out, injection: decision.injection };
}

type Decision = { readonly skip: Skip } | { readonly injection: Injection };

function skip(reason: SkipReason, message: string): Decision {
  return { skip: { reason, message } };
}

function decide(pod: RawPod, ctx: MutateContext): Decision {
  if (allContainers(pod).some((c) => c.name === SIDECAR_CONTAINER)) {
    return skip('already-injected', `already injected (container ${SIDECAR_CONTAINER} present)`);
  }
  const podLabel = pod.metadata?.labels?.[INJECT_LABEL];
  if (podLabel === INJECT_DISABLED) return skip('opted-out', `pod label ${INJECT_LABEL}=${INJECT_DISABLED}`);
  const optedIn = podLabel === INJECT_ENABLED;
  if (!optedIn) {
    if (ctx.namespaceLabels !== undefined && ctx.namespaceLabels[INJECT_LABEL] !== INJECT_ENABLED) {
      return skip('namespace-not-enabled', `namespace not labelled ${INJECT_LABEL}=${INJECT_ENABLED}`);
    }
    if (!isJobPod(pod)) {
      return skip('not-a-job-pod', `not a Job pod; label it ${INJECT_LABEL}=${INJECT_ENABLED} to opt in`);
    }
  }
  const spec = pod.spec;
  if (spec.hostPID === true) {
    return skip('host-pid', 'hostPID: true; the sidecar needs a PID namespace shared by the pod alone');
  }
  if (spec.shareProcessNamespace === false) {
    return skip('share-process-namespace-false', 'shareProcessNamespace: false is set explicitly');
  }
  if (spec.os?.name === 'windows') return skip('windows-pod', 'Windows pods cannot share a process namespace');

  const parsed = parseTargetAnnotations(annotationsBeforeIstioMerge(pod));
  if (!parsed.ok) return skip('invalid-annotation', describeAnnotationError(parsed.error));
  const ann = parsed.value;

  if (ann.container !== undefined && !spec.containers.some((c) => c.name === ann.container)) {
    return skip(
      'invalid-annotation',
      `invalid annotation ${ANNOTATION.container}="${ann.container}": no such container (have ${names(spec.containers)})`,
    );
  }
  const target = resolvePort(ann, spec.containers);
  if (typeof target === 'string') {
    return target === 'none'
      ? skip(
          'no-metrics-port',
          `no metrics port: set ${ANNOTATION.port}, or name a container port ${METRICS_PORT_NAMES.join(' or ')}`,
        )
      : skip('invalid-annotation', target);
  }

  const job = jobOf(pod);
  const workload = workloadName({ pod, job, annotation: ann.workload, lookup: ctx.jobOwner, nowMs: ctx.nowMs });
  if (!workload) return skip('no-workload-name', `no workload name: set ${ANNOTATION.workload}`);

  const firstContainer = spec.containers[0]?.name ?? '';
  return {
    injection: {
      mode: ctx.mode,
      // The pod shares one network namespace, so the main container is on localhost.
      scrapeUrl: `${ann.scheme}://localhost:${target.port}${ann.path}`,
      interval: ann.interval ?? ctx.sidecar.interval,
      container: ann.container ?? target.container ?? firstContainer,
      workload,
    },
  };
}

/**
 * The port to scrape and the container exposing it. Returns `'none'` when nothing names a
 * port, or the message of an invalid annotation.
 */
function resolvePort(
  ann: TargetAnnotations,
  containers: readonly RawContainer[],
): { port: number; container?: string } | 'none' | string {
  // Look in the main container first when the annotation names it, then in every container.
  const ordered =
    ann.container === undefined
      ? containers
      : [...containers.filter((c) => c.name === ann.container), ...containers.filter((c) => c.name !== ann.container)];
  const find = (pred: (name: string | undefined, port: number) => boolean): { port: number; container: string } | undefined => {
    for (const c of ordered) {
      for (const p of c.ports ?? []) {
        if (typeof p.containerPort === 'number' && pred(p.name, p.containerPort)) return { port: p.containerPort, container: c.name };
      }
    }
    return undefined;
  };
  const ref: PortRef | undefined = ann.port;
  if (ref?.kind === 'number') {
    const owner = find((_, port) => port === ref.port);
    return owner ?? { port: ref.port };
  }
  if (ref?.kind === 'name') {
    const named = find((name) => name === ref.name);
    if (named) return named;
    return `invalid annotation ${ref.from}="${ref.name}": no container port has that name`;
  }
  for (const portName of METRICS_PORT_NAMES) {
    const named = find((name) => name === portName);
    if (named) return named;
  }
  return 'none';
}

/**
 * A copy of the pod with the status annotation, sharing every object it does not change (copy on
 * write): `metadata`, `annotations` and `spec` are new, the rest is the input's and never modified.
 * A deep clone of the whole pod was the largest single cost of a review.
 */
function withStatus(pod: RawPod, status: string): RawPod {
  const meta = pod.metadata ?? {};
  return {
    ...pod,
    metadata: { ...meta, annotations: { ...(meta.annotations ?? {}), [ANNOTATION.status]: status } },
    spec: { ...pod.spec },
  };
}

/**
 * The uid/gid the sidecar runs as (Dockerfile.sidecar's USER too): one no image is built to use,
 * so it is never the main container's. In the pod's shared PID namespace, a process of the same
 * uid could read the other container's /proc/<pid>/environ (its secrets) and, through
 * /proc/<pid>/root, its filesystem: the kernel allows that to the same uid (ptrace access mode,
 * proc(5)). Not 65532, the distroless and Chainguard `nonroot` user many jobs run as; not 65534
 * (`nobody`), 65533 (Alpine's `nogroup`), 65535 (-1 as a 16-bit id), 0–999 (system users) or the
 * first users from 1000 that images create. At most 65535, so it maps under any user namespace of
 * the usual 65 536 ids. docs/install.md, "Isolation between the sidecar and the main container".
 */
export const SIDECAR_UID = 65531;

function sidecarContainer(injection: Injection, ctx: MutateContext): RawContainer {
  const s = ctx.sidecar;
  const env: JsonValue[] = [
    { name: SIDECAR_ENV.scrapeUrl, value: injection.scrapeUrl },
    { name: SIDECAR_ENV.remoteWriteUrl, value: s.remoteWriteUrl },
    { name: SIDECAR_ENV.interval, value: injection.interval },
    { name: SIDECAR_ENV.pushInterval, value: s.pushInterval },
    { name: SIDECAR_ENV.flushTimeout, value: s.flushTimeout },
    // The Downward API, because Job pods are created with generateName: their name does not
    // exist yet at admission (https://kubernetes.io/docs/concepts/workloads/pods/downward-api/).
    { name: SIDECAR_ENV.namespace, valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
    { name: SIDECAR_ENV.pod, valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
    { name: SIDECAR_ENV.job, value: injection.workload.name },
    { name: SIDECAR_ENV.mode, value: injection.mode },
  ];
  const resources: { [key: string]: JsonValue } = {};
  if (Object.keys(s.resources.requests).length > 0) resources['requests'] = { ...s.resources.requests };
  if (Object.keys(s.resources.limits).length > 0) resources['limits'] = { ...s.resources.limits };
  return {
    name: SIDECAR_CONTAINER,
    image: s.image,
    imagePullPolicy: s.imagePullPolicy,
    // restartPolicy on an init container is what makes it a native sidecar.
    ...(injection.mode === 'native' && { restartPolicy: 'Always' }),
    env,
    resources,
    // Meets the "restricted" Pod Security Standard
    // (https://kubernetes.io/docs/concepts/security/pod-security-standards/#restricted).
    securityContext: {
      runAsNonRoot: true,
      runAsUser: SIDECAR_UID,
      runAsGroup: SIDECAR_UID,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    },
    terminationMessagePolicy: 'FallbackToLogsOnError',
  };
}

function names(containers: readonly RawContainer[]): string {
  return containers.map((c) => c.name).join(', ') || 'none';
}
