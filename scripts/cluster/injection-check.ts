/**
 * Is injection live? A webhook pod that is Ready is not yet a webhook the API server reaches: the
 * API server calls it through its Service, and kube-proxy routes the Service's address only after
 * the EndpointSlice with the ready pods has reached it (a second or more on a loaded node). A pod
 * created in between is admitted without the sidecar (failurePolicy: Ignore), silently.
 *
 * So the check asks the API server itself: a server-side dry run of the pod in
 * manifests/checks/injection-check.yaml, a pod as the Job controller makes them. The API server runs
 * the whole admission chain for a dry run, webhook included (sideEffects: None), and stores nothing.
 * docs/install.md "Check that injection is live" gives admins the same check, with that file.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { ANNOTATION, INJECT_ENABLED, INJECT_LABEL, SIDECAR_CONTAINER, STATUS_INJECTED } from '../../shared/names.ts';
import type { ControlPlane } from './control-plane.ts';
import { ROOT } from './paths.ts';

export const CHECK_POD_FILE = join(ROOT, 'manifests', 'checks', 'injection-check.yaml');

/** What the API server returned for the dry-run pod: what a pod created now would get. */
export interface ProbeAnswer {
  /** The webhook's annotation (`injected`, `skipped: …`), undefined when the webhook was not reached. */
  readonly status: string | undefined;
  /** The sidecar as it would be added, when it was: a native sidecar is an init container. */
  readonly sidecar: { readonly in: 'initContainers' | 'containers'; readonly image: string | undefined; readonly env: Readonly<Record<string, string>> } | undefined;
  /** The pod's imagePullSecrets by name (the webhook adds `sidecar.imagePullSecrets`). */
  readonly imagePullSecrets: readonly string[];
}

type CheckPod = { metadata: { labels?: Record<string, string> } & Record<string, unknown> } & Record<string, unknown>;
/** The file, read once: the checks repeat every few hundred ms. */
let checkPod: CheckPod | undefined;

/**
 * The check's pod in `namespace`. A Job's pod is sent to the webhook only in a labelled namespace;
 * `optIn` adds the pod's own label, with which it is sent in any namespace not excluded or opted out.
 */
export function probePod(namespace: string, o: { optIn?: boolean } = {}): Record<string, unknown> {
  checkPod ??= parse(readFileSync(CHECK_POD_FILE, 'utf8')) as CheckPod;
  const pod = checkPod;
  return {
    ...pod,
    metadata: { ...pod.metadata, namespace, labels: { ...pod.metadata.labels, ...(o.optIn === true && { [INJECT_LABEL]: INJECT_ENABLED }) } },
  };
}

/** Reads the answer out of the dry-run pod the API server returned. */
export function probeAnswer(pod: unknown): ProbeAnswer {
  type Container = { name?: string; image?: string; env?: { name: string; value?: string }[] };
  const p = pod as { metadata?: { annotations?: Record<string, string> }; spec?: { initContainers?: Container[]; containers?: Container[]; imagePullSecrets?: { name?: string }[] } };
  const status = p.metadata?.annotations?.[ANNOTATION.status];
  const imagePullSecrets = (p.spec?.imagePullSecrets ?? []).flatMap((s) => (s.name === undefined ? [] : [s.name]));
  for (const where of ['initContainers', 'containers'] as const) {
    const c = p.spec?.[where]?.find((x) => x.name === SIDECAR_CONTAINER);
    if (c) return { status, sidecar: { in: where, image: c.image, env: Object.fromEntries((c.env ?? []).flatMap((e) => (e.value === undefined ? [] : [[e.name, e.value]]))) }, imagePullSecrets };
  }
  return { status, sidecar: undefined, imagePullSecrets };
}

/** One dry run: what a pod created now in `namespace` would get. */
export async function dryRunProbe(cp: ControlPlane, namespace: string, o: { optIn?: boolean } = {}): Promise<ProbeAnswer> {
  const r = await cp.kubectl(['create', '--dry-run=server', '-o', 'json', '-f', '-'], { input: JSON.stringify(probePod(namespace, o)) });
  if (r.code !== 0) throw new Error(`injection check: kubectl create --dry-run=server of a pod in ${namespace} exited ${r.code}: ${(r.stderr || r.stdout).trim().slice(0, 500)}`);
  return probeAnswer(JSON.parse(r.stdout));
}

export interface WaitForInjectionOptions {
  /** Default: `default`, with the pod opted in by its own label (no namespace label needed). */
  readonly namespace?: string;
  /** What the answer must also show, e.g. a setting just rolled out; every answer counts as live by default. */
  readonly accept?: (answer: ProbeAnswer) => boolean;
  /** Answers in a row: the Service may route to several replicas, each reached on its own. */
  readonly consecutive?: number;
  readonly timeoutMs?: number;
  readonly pollMs?: number;
}

/**
 * Waits until `consecutive` dry runs in a row come back injected (and accepted); throws with the
 * last answer after `timeoutMs`.
 */
export async function waitForInjection(cp: ControlPlane, o: WaitForInjectionOptions = {}): Promise<ProbeAnswer> {
  const { namespace, accept = () => true, consecutive = 3, timeoutMs = 120_000, pollMs = 500 } = o;
  const where = namespace ?? 'default';
  const deadline = Date.now() + timeoutMs;
  let inARow = 0;
  for (;;) {
    const answer = await dryRunProbe(cp, where, { optIn: namespace === undefined });
    inARow = answer.status === STATUS_INJECTED && answer.sidecar !== undefined && accept(answer) ? inARow + 1 : 0;
    if (inARow >= consecutive) return answer;
    if (Date.now() > deadline) {
      const got = answer.status === undefined ? 'no jobmetrics.io/status annotation: the API server did not reach the webhook (its log says why: "Failed calling webhook")' : `status "${answer.status}"${answer.status === STATUS_INJECTED ? ', but not with the settings wanted' : ''}`;
      throw new Error(`injection is not live after ${Math.round(timeoutMs / 1000)} s of dry runs: a pod in ${where} got ${got}`);
    }
    await new Promise((r) => setTimeout(r, inARow > 0 ? 100 : pollMs));
  }
}
