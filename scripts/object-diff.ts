/**
 * Compares two renders of Kubernetes objects (`kubectl kustomize`, `helm template`) object by
 * object: parsed, keyed by kind/namespace/name, so that key order, quoting, comments and document
 * order do not count, and every difference is one readable line with its path.
 */
import { parseAllDocuments } from 'yaml';

export type KubeObject = Record<string, unknown> & { kind?: unknown; metadata?: { name?: unknown; namespace?: unknown } };

/** `Kind namespace/name` (or `Kind name` for a cluster-scoped object). */
export function objectKey(o: KubeObject): string {
  const ns = typeof o.metadata?.namespace === 'string' ? `${o.metadata.namespace}/` : '';
  return `${String(o.kind)} ${ns}${String(o.metadata?.name)}`;
}

/** The objects of a multi-document YAML stream by key; empty documents are skipped, a repeated key is an error. */
export function objectsByKey(text: string, source: string): Map<string, KubeObject> {
  const out = new Map<string, KubeObject>();
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length > 0) throw new Error(`${source}: ${doc.errors.map((e) => e.message).join('; ')}`);
    const o = doc.toJS() as unknown;
    if (o === null || o === undefined) continue;
    if (typeof o !== 'object' || Array.isArray(o)) throw new Error(`${source}: a document is not an object: ${JSON.stringify(o).slice(0, 200)}`);
    const key = objectKey(o as KubeObject);
    if (out.has(key)) throw new Error(`${source}: ${key} twice`);
    out.set(key, o as KubeObject);
  }
  return out;
}

const show = (v: unknown): string => (v === undefined ? '(absent)' : JSON.stringify(v).slice(0, 300));

/**
 * Lists whose items Kubernetes identifies by `name`, whatever their order (their strategic-merge
 * key; kustomize's patches put added items first): compared as maps by name. Every other list is
 * compared by position.
 */
const LISTS_BY_NAME = new Set(['env', 'volumes', 'volumeMounts']);

const byName = (items: unknown[]): Record<string, unknown> | undefined => {
  const out: Record<string, unknown> = {};
  for (const item of items) {
    const name = typeof item === 'object' && item !== null ? (item as { name?: unknown }).name : undefined;
    if (typeof name !== 'string' || name in out) return undefined;
    out[name] = item;
  }
  return out;
};

/** Every difference between two values, as `path: want → got` lines. */
export function valueDifferences(want: unknown, got: unknown, path = ''): string[] {
  const field = path.slice(path.lastIndexOf('.') + 1);
  if (Array.isArray(want) && Array.isArray(got) && LISTS_BY_NAME.has(field)) {
    const a = byName(want);
    const b = byName(got);
    if (a && b) {
      const names = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
      return names.flatMap((n) => valueDifferences(a[n], b[n], `${path}[name=${n}]`));
    }
  }
  if (Array.isArray(want) && Array.isArray(got)) {
    const out: string[] = [];
    for (let i = 0; i < Math.max(want.length, got.length); i++) out.push(...valueDifferences(want[i], got[i], `${path}[${i}]`));
    return out;
  }
  const isMap = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (isMap(want) && isMap(got)) {
    const keys = [...new Set([...Object.keys(want), ...Object.keys(got)])].sort();
    return keys.flatMap((k) => valueDifferences(want[k], got[k], path ? `${path}.${k}` : k));
  }
  if (typeof want === 'string' && typeof got === 'string' && want !== got && (want.includes('\n') || got.includes('\n'))) {
    // A file in a ConfigMap: the first line that differs.
    const a = want.split('\n');
    const b = got.split('\n');
    const i = a.findIndex((line, n) => line !== b[n]);
    const at = i === -1 ? a.length : i;
    return [`${path}: line ${at + 1}: ${show(a[at])} → ${show(b[at])}`];
  }
  return JSON.stringify(want) === JSON.stringify(got) ? [] : [`${path}: ${show(want)} → ${show(got)}`];
}

/** Objects only in one render, and each difference of the objects in both. */
export function renderDifferences(want: Map<string, KubeObject>, got: Map<string, KubeObject>): string[] {
  const out: string[] = [];
  for (const key of [...new Set([...want.keys(), ...got.keys()])].sort()) {
    const a = want.get(key);
    const b = got.get(key);
    if (!b) out.push(`${key}: missing`);
    else if (!a) out.push(`${key}: unexpected`);
    else out.push(...valueDifferences(a, b).map((d) => `${key}: ${d}`));
  }
  return out;
}
