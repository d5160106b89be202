/**
 * Every injection decision, as one pure function over the raw pod (docs/webhook.md).
 * No I/O, no clock, no globals: what the decision depends on (settings, chosen mode, what the API
 * said about the Job's owner, the time for the CronJob name pattern) comes in through the context,
 * so the golden-file tests pin the whole behaviour.
 */
import { describeAnnotationError, isPortNumber, parseTargetAnnotations, type PortRef, type TargetAnnotations } from '../shared/annotations.ts';
import { formatDuration } from '../shared/duration.ts';
import {
  ANNOTATION,
  INJECT_DISABLED,
  INJECT_ENABLED,
  INJECT_LABEL,
  METRICS_PORT_NAMES,
  SIDECAR_CONTAINER,
  SIDECAR_ENV,
  RESERVED_VOLUMES,
  STATE_VOLUME,
  STATUS_INJECTED,
  TOKEN_VOLUME,
  statusSkipped,
  type SidecarMode,
} from '../shared/names.ts';
import { DEFAULT_EXCLUDED_NAMESPACES, type SidecarSettings } from './config.ts';
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
  /**
   * The pod's namespace: the AdmissionRequest's `namespace`, which the API server always sets for
   * a namespaced object; absent: the pod's `metadata.namespace`, which a create request may omit.
   */
  readonly namespace?: string;
  /**
   * Namespaces never injected into, whatever the labels (the `excludedNamespaces` setting);
   * absent: the built-in default. The namespaceSelector excludes them too; this check is for an
   * API server whose MutatingWebhookConfiguration says otherwise.
   */
  readonly excludedNamespaces?: readonly string[];
  /** What the API said about the owner of the pod's Job; absent when nobody asked. */
  readonly jobOwner?: JobOwnerLookup;
  /** Milliseconds since the epoch; only the CronJob name pattern looks at it. */
  readonly nowMs: number;
}

export const SKIP_REASONS = [
  'already-injected',
  'namespace-excluded',
  'opted-out',
  'namespace-not-enabled',
  'not-a-job-pod',
  'host-pid',
  'share-process-namespace-false',
  'windows-pod',
  'volume-conflict',
  'main-runs-as-sidecar-uid',
  'invalid-annotation',
  'invalid-port',
  'no-metrics-port',
  'no-workload-name',
  'restart-needs-native',
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
  /** JOBMETRICS_FLUSH_TIMEOUT: the configured one, cut to fit the pod's grace period. */
  readonly flushTimeout: string;
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
    // The kubelet restarts a native sidecar that dies; what it had acknowledged must survive
    // that, and an emptyDir lives as long as the pod (docs/sidecar.md "Restarts").
    out.spec.volumes = [...(out.spec.volumes ?? []), { name: STATE_VOLUME.name, emptyDir: { sizeLimit: STATE_VOLUME.sizeLimit } }];
  } else {
    out.spec.containers = [...out.spec.containers, container];
  }
  if (ctx.sidecar.tokenAudience !== '') out.spec.volumes = [...(out.spec.volumes ?? []), tokenVolume(ctx.sidecar.tokenAudience)];
  // The sidecar image may live in a private registry the pod's own pull secrets do not cover.
  const existing = Array.isArray(out.spec.imagePullSecrets) ? out.spec.imagePullSecrets : [];
  const listed = new Set(existing.map((r) => (typeof r === 'object' && r !== null ? r.name : undefined)));
  const missing = ctx.sidecar.imagePullSecrets.filter((name) => !listed.has(name));
  if (missing.length > 0) out.spec.imagePullSecrets = [...existing, ...missing.map((name) => ({ name }))];
  return { inject: true, pod: out, injection: decision.injection };
}

type Decision = { readonly skip: Skip } | { readonly injection: Injection };

function skip(reason: SkipReason, message: string): { readonly skip: Skip } {
  return { skip: { reason, message } };
}

function decide(pod: RawPod, ctx: MutateContext): Decision {
  if (allContainers(pod).some((c) => c.name === SIDECAR_CONTAINER)) {
    return skip('already-injected', `already injected (container ${SIDECAR_CONTAINER} present)`);
  }
  // Before the pod's own opt-in: a pod label must not reach into the control plane's namespaces
  // or jobmetrics' own (an injected webhook or gateway pod would depend on itself).
  const namespace = ctx.namespace ?? pod.metadata?.namespace;
  if (namespace !== undefined && (ctx.excludedNamespaces ?? DEFAULT_EXCLUDED_NAMESPACES).includes(namespace)) {
    return skip('namespace-excluded', `namespace ${namespace} is excluded (webhook setting excludedNamespaces)`);
  }
  const podLabel = pod.metadata?.labels?.[INJECT_LABEL];
  if (podLabel === INJECT_DISABLED) return skip('opted-out', `pod label ${INJECT_LABEL}=${INJECT_DISABLED}`);
  // A namespace's opt-out wins over a pod's opt-in, as the opted-in-pods entry's namespaceSelector
  // says; like the opt-in, it is checked here only when the caller knows the namespace's labels.
  if (ctx.namespaceLabels?.[INJECT_LABEL] === INJECT_DISABLED) {
    return skip('namespace-not-enabled', `namespace labelled ${INJECT_LABEL}=${INJECT_DISABLED}`);
  }
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
  const taken = reservedVolumeUse(pod);
  if (taken !== undefined) {
    const why =
      taken.name === STATE_VOLUME.name
        ? "the sidecar's state volume; another container could rewrite what the sidecar acknowledged"
        : "the sidecar's token volume; another container could write as the sidecar";
    return skip('volume-conflict', `${taken.use} ${taken.name}, the name of ${why}`);
  }
  const sameUid = containerAsSidecarUid(pod);
  if (sameUid !== undefined) {
    return skip(
      'main-runs-as-sidecar-uid',
      `container ${sameUid} runs as uid ${SIDECAR_UID}, the sidecar's: sharing the process namespace, each could read the other's /proc/<pid>/environ and root; set another runAsUser`,
    );
  }

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
  if (target === 'none') {
    return skip('no-metrics-port', `no metrics port: set ${ANNOTATION.port}, or name a container port ${METRICS_PORT_NAMES.join(' or ')}`);
  }
  if ('skip' in target) return target;

  const job = jobOf(pod);
  const workload = workloadName({ pod, job, annotation: ann.workload, lookup: ctx.jobOwner, nowMs: ctx.nowMs });
  if (!workload) return skip('no-workload-name', `no workload name: set ${ANNOTATION.workload}`);

  // The kubelet restarts a failed main container in the same pod. Only a native sidecar keeps
  // running across that; a legacy one cannot see the exit code, so it would take the first exit
  // for the end and every later attempt would go uncounted (docs/sidecar.md "Restarts").
  if (ctx.mode === 'legacy' && spec.restartPolicy === 'OnFailure') {
    return skip(
      'restart-needs-native',
      'restartPolicy OnFailure needs native sidecar mode (Kubernetes ≥ 1.29): in legacy mode the attempts after the first would not be counted',
    );
  }

  const firstContainer = spec.containers[0]?.name ?? '';
  return {
    injection: {
      mode: ctx.mode,
      // The pod shares one network namespace, so the main container is on localhost.
      scrapeUrl: `${ann.scheme}://localhost:${target.port}${ann.path}`,
      interval: ann.interval ?? ctx.sidecar.interval,
      container: ann.container ?? target.container ?? firstContainer,
      workload,
      flushTimeout: formatDuration(flushBudgetMs(ctx.sidecar.flushTimeoutMs, spec.terminationGracePeriodSeconds)),
    },
  };
}

/** Kubernetes' default `terminationGracePeriodSeconds`. */
export const DEFAULT_GRACE_SECONDS = 30;
/** Kept back from the grace period for the sidecar's own exit and the kubelet's bookkeeping. */
export const FLUSH_MARGIN_MS = 2_000;
/** The shortest flush timeout given, even when the grace period leaves less (nothing can fit then). */
export const FLUSH_FLOOR_MS = 500;

/**
 * The final flush's budget (docs/sidecar.md "Flush budget"): the pod's `terminationGracePeriodSeconds` is
 * one budget for every container, and a SIGKILL ends whatever still runs after it. So the flush
 * timeout is the configured one, but at most the grace period less a margin (2 s, or half the
 * grace period when that is shorter), and never below 500 ms:
 *
 *   min(configured, max(500ms, grace − min(2s, grace / 2)))
 */
export function flushBudgetMs(configuredMs: number, graceSeconds: number | null | undefined): number {
  const graceMs = Math.max(0, graceSeconds ?? DEFAULT_GRACE_SECONDS) * 1_000;
  const margin = Math.min(FLUSH_MARGIN_MS, graceMs / 2);
  return Math.min(configuredMs, Math.max(FLUSH_FLOOR_MS, Math.floor(graceMs - margin)));
}

/**
 * The port to scrape and the container exposing it. Returns `'none'` when nothing names a
 * port, or the skip for an annotation naming no port or a named port that is no TCP port.
 */
function resolvePort(
  ann: TargetAnnotations,
  containers: readonly RawContainer[],
): { port: number; container?: string } | 'none' | { readonly skip: Skip } {
  // Look in the main container first when the annotation names it, then in every container.
  const ordered =
    ann.container === undefined
      ? containers
      : [...containers.filter((c) => c.name === ann.container), ...containers.filter((c) => c.name !== ann.container)];
  const find = (pred: (name: string | undefined, port: unknown) => boolean): { port: unknown; container: string } | undefined => {
    for (const c of ordered) {
      for (const p of c.ports ?? []) {
        if (pred(p.name, p.containerPort)) return { port: p.containerPort, container: c.name };
      }
    }
    return undefined;
  };
  // The API server validates containerPort only after the mutating webhooks have run, so the pod
  // in the review may carry any JSON value there: only an integer 1…65535 is a port to scrape.
  const named = (portName: string): { port: number; container: string } | { readonly skip: Skip } | undefined => {
    const found = find((name) => name === portName);
    if (found === undefined) return undefined;
    if (isPortNumber(found.port)) return { port: found.port, container: found.container };
    return skip(
      'invalid-port',
      `container port "${portName}" of container ${found.container} is ${JSON.stringify(found.port) ?? 'missing'}, not an integer port number 1…65535`,
    );
  };
  const ref: PortRef | undefined = ann.port;
  if (ref?.kind === 'number') {
    const owner = find((_, port) => port === ref.port);
    return owner ? { port: ref.port, container: owner.container } : { port: ref.port };
  }
  if (ref?.kind === 'name') {
    return (
      named(ref.name) ??
      skip('invalid-annotation', `invalid annotation ${ref.from}="${ref.name}": no container port has that name`)
    );
  }
  for (const portName of METRICS_PORT_NAMES) {
    const r = named(portName);
    if (r) return r;
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
    { name: SIDECAR_ENV.flushTimeout, value: injection.flushTimeout },
    // The Downward API, because Job pods are created with generateName: their name does not
    // exist yet at admission (https://kubernetes.io/docs/concepts/workloads/pods/downward-api/).
    { name: SIDECAR_ENV.namespace, valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
    { name: SIDECAR_ENV.pod, valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
    { name: SIDECAR_ENV.job, value: injection.workload.name },
    { name: SIDECAR_ENV.mode, value: injection.mode },
    { name: SIDECAR_ENV.mainContainer, value: injection.container },
    ...(injection.mode === 'native' ? [{ name: SIDECAR_ENV.stateDir, value: STATE_VOLUME.mountPath }] : []),
    ...(s.tokenAudience !== '' ? [{ name: SIDECAR_ENV.writerTokenFile, value: `${TOKEN_VOLUME.mountPath}/${TOKEN_VOLUME.file}` }] : []),
  ];
  const mounts: JsonValue[] = [
    ...(injection.mode === 'native' ? [{ name: STATE_VOLUME.name, mountPath: STATE_VOLUME.mountPath }] : []),
    ...(s.tokenAudience !== '' ? [{ name: TOKEN_VOLUME.name, mountPath: TOKEN_VOLUME.mountPath, readOnly: true }] : []),
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
    ...(mounts.length > 0 && { volumeMounts: mounts }),
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

/**
 * The sidecar's identity towards the gateway (docs/gateway.md "Who may write what"): a token of
 * the pod's own service account, bound to the pod, with the gateway's audience, so the gateway
 * learns from the API server which namespace and pod a write comes from. Mounted into the sidecar
 * alone. Any pod may request such a token for itself; it still names only its own namespace.
 */
function tokenVolume(audience: string): JsonValue {
  return {
    name: TOKEN_VOLUME.name,
    projected: {
      sources: [{ serviceAccountToken: { audience, expirationSeconds: TOKEN_VOLUME.expirationSeconds, path: TOKEN_VOLUME.file } }],
    },
  };
}

/**
 * How the pod already uses one of the volume names the webhook adds, if it does: a volume of that
 * name, or a container mounting one (with no such volume the pod would be invalid, and our
 * injection would make it valid, mounting the sidecar's state or token into that container). The
 * state decides what the sidecar sends after a restart and the token whose numbers it writes, so
 * both must be the sidecar's alone. Checked in both modes: the names are reserved, and whether a
 * pod is injected should not depend on the mode chosen.
 */
function reservedVolumeUse(pod: RawPod): { name: string; use: string } | undefined {
  const nameOf = (v: unknown): string | undefined => {
    const n = isRecord(v) ? v['name'] : undefined;
    return typeof n === 'string' && (RESERVED_VOLUMES as readonly string[]).includes(n) ? n : undefined;
  };
  for (const v of pod.spec.volumes ?? []) {
    const name = nameOf(v);
    if (name !== undefined) return { name, use: 'the pod has a volume named' };
  }
  for (const c of allContainers(pod)) {
    for (const key of ['volumeMounts', 'volumeDevices']) {
      const list = c[key];
      if (!Array.isArray(list)) continue;
      for (const m of list) {
        const name = nameOf(m);
        if (name !== undefined) return { name, use: `container ${c.name} mounts a volume named` };
      }
    }
  }
  return undefined;
}

/**
 * The first container (init containers included: other native sidecars run beside ours) whose
 * effective uid is the sidecar's: its securityContext.runAsUser, else the pod's
 * (https://kubernetes.io/docs/tasks/configure-pod-container/security-context/: "the settings made
 * at the Container level override the settings made at the Pod level"). The kernel lets the same
 * uid read /proc/<pid>/environ and /proc/<pid>/root of the other's processes (ptrace access mode,
 * proc(5)), which is what the sidecar's uid exists to prevent. A uid set only by the image's USER
 * cannot be seen at admission.
 */
function containerAsSidecarUid(pod: RawPod): string | undefined {
  const podUid = runAsUserOf(pod.spec['securityContext']);
  for (const c of allContainers(pod)) {
    if ((runAsUserOf(c['securityContext']) ?? podUid) === SIDECAR_UID) return c.name;
  }
  return undefined;
}

/** securityContext.runAsUser when it is a number (the API server validates types only after the webhooks). */
function runAsUserOf(securityContext: unknown): number | undefined {
  if (!isRecord(securityContext)) return undefined;
  const uid = securityContext['runAsUser'];
  return typeof uid === 'number' ? uid : undefined;
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function names(containers: readonly RawContainer[]): string {
  return containers.map((c) => c.name).join(', ') || 'none';
}
