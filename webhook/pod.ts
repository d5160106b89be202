/**
 * The pod as the API server sends it: plain JSON, read through narrow views of the few fields the
 * webhook looks at. Every other field stays as it came, which is why typed client models are not
 * used here: they drop fields they do not know (newer API versions, alpha fields), and the diff
 * against the request would then remove them from the pod.
 */

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

export interface RawOwnerReference {
  apiVersion?: string;
  kind?: string;
  name?: string;
  uid?: string;
  controller?: boolean;
  [key: string]: unknown;
}

export interface RawObjectMeta {
  name?: string;
  generateName?: string;
  namespace?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences?: RawOwnerReference[];
  [key: string]: unknown;
}

export interface RawContainerPort {
  name?: string;
  containerPort?: number;
  protocol?: string;
  [key: string]: unknown;
}

export interface RawContainer {
  name: string;
  ports?: RawContainerPort[];
  restartPolicy?: string;
  [key: string]: unknown;
}

export interface RawPodSpec {
  containers: RawContainer[];
  initContainers?: RawContainer[];
  hostPID?: boolean;
  shareProcessNamespace?: boolean;
  os?: { name?: string; [key: string]: unknown };
  /** `Always`, `OnFailure` or `Never`; Job pods have one of the last two. */
  restartPolicy?: string;
  /** The pod's one shutdown budget for all its containers (default 30). */
  terminationGracePeriodSeconds?: number | null;
  volumes?: JsonValue[];
  imagePullSecrets?: { name?: string; [key: string]: unknown }[];
  [key: string]: unknown;
}

export interface RawPod {
  apiVersion?: string;
  kind?: string;
  metadata?: RawObjectMeta;
  spec: RawPodSpec;
  [key: string]: unknown;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

const isStringMap = (v: unknown): v is Record<string, string> =>
  isObject(v) && Object.values(v).every((x) => typeof x === 'string');

/**
 * Checks the fields the webhook reads have the types it expects. The API server has decoded the
 * object into Go structs before calling webhooks, so a real request always passes; this guards
 * against hand-made requests, and returns what was wrong instead of throwing later.
 */
export function checkPodShape(value: unknown): { ok: true; pod: RawPod } | { ok: false; error: string } {
  if (!isObject(value)) return { ok: false, error: 'object is not a JSON object' };
  const meta = value['metadata'];
  if (meta !== undefined) {
    if (!isObject(meta)) return { ok: false, error: 'metadata is not an object' };
    for (const key of ['labels', 'annotations'] as const) {
      if (meta[key] !== undefined && meta[key] !== null && !isStringMap(meta[key])) {
        return { ok: false, error: `metadata.${key} is not a map of strings` };
      }
    }
    const owners = meta['ownerReferences'];
    if (owners !== undefined && owners !== null && !(Array.isArray(owners) && owners.every(isObject))) {
      return { ok: false, error: 'metadata.ownerReferences is not a list of objects' };
    }
  }
  const spec = value['spec'];
  if (!isObject(spec)) return { ok: false, error: 'spec is missing or not an object' };
  for (const key of ['containers', 'initContainers'] as const) {
    const list = spec[key];
    if (key === 'initContainers' && (list === undefined || list === null)) continue;
    if (!Array.isArray(list)) return { ok: false, error: `spec.${key} is not a list` };
    for (const [i, c] of list.entries()) {
      if (!isObject(c) || typeof c['name'] !== 'string') {
        return { ok: false, error: `spec.${key}[${i}] has no name` };
      }
      const ports = c['ports'];
      if (ports !== undefined && ports !== null && !(Array.isArray(ports) && ports.every(isObject))) {
        return { ok: false, error: `spec.${key}[${i}].ports is not a list of objects` };
      }
    }
  }
  return { ok: true, pod: value as RawPod };
}

/** All containers of the pod, init containers first, in the order the kubelet starts them. */
export function allContainers(pod: RawPod): RawContainer[] {
  return [...(pod.spec.initContainers ?? []), ...pod.spec.containers];
}
