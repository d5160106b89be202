/**
 * The scaled-out aggregator tier as the manifests ship it, read from manifests/overlays/<name>:
 * the routers' and the shards' vmagent arguments, their environment, and how many of each. And the
 * two transformations a local run may make to those arguments: addresses, ports and paths are
 * replaced by loopback ones, and the credential flags are dropped (on loopback no pod can skip the
 * gateway, and the Secret they read exists only in a cluster); every other flag is passed on
 * exactly as written (localizeArgs).
 *
 * Where each part is read (the layout both overlays follow, so no kustomize is needed here;
 * test/e2e/manifests.test.ts checks that the kustomize-rendered objects say the same):
 * - router arguments: the JSON patch `<overlay>/router-args.yaml`, op `replace` of
 *   `/spec/template/spec/containers/0/args`;
 * - shard arguments: the JSON patch `<overlay>/shard-args.yaml` (same op) when the overlay has one,
 *   else the StatefulSet `jobmetrics-aggregator-shard` in `<overlay>/shards.yaml`; its environment
 *   from that StatefulSet plus the `add` ops of `shard-args.yaml` on `.../containers/0/env/-`;
 * - router replicas: the Deployment patch in `<overlay>/kustomization.yaml`, else in the overlays
 *   it builds on;
 * - shards: one per router `-remoteWrite.url` (the manifests test checks the StatefulSet agrees);
 * - a `configMapKeyRef` in the environment: the literal of manifests/aggregator/kustomization.yaml's
 *   configMapGenerator; a `fieldRef` to `metadata.name`: the pod's name
 *   (`jobmetrics-aggregator-shard-<i>`).
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

const PROJECT_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const MANIFESTS_DIR = join(PROJECT_ROOT, 'manifests');

export const SHARD_SET = 'jobmetrics-aggregator-shard';
const ARGS_PATH = '/spec/template/spec/containers/0/args';
/** The flags that make vmagent check and send the aggregator's credentials (manifests/aggregator/vmagent.yaml). */
const CREDENTIAL_FLAG = /^-(httpAuth|remoteWrite\.basicAuth)\./;
const ENV_ADD_PATH = '/spec/template/spec/containers/0/env/-';
/** A router's flag, once per destination: one per shard. */
const REMOTE_WRITE_URL = '-remoteWrite.url';

/** How one environment variable of a shard gets its value. */
export type EnvSource = { readonly value: string } | { readonly podName: true };

export interface TopologySpec {
  readonly overlay: string;
  readonly routers: number;
  readonly routerArgs: readonly string[];
  /** Aggregator processes: one per router `-remoteWrite.url`, in that order. */
  readonly shards: number;
  readonly shardArgs: readonly string[];
  readonly shardEnv: ReadonlyMap<string, EnvSource>;
}

/**
 * A vmagent argument `-flag=value` split at its first `=` (a value may hold more, as
 * `-remoteWrite.label=name=value` does); undefined for a bare boolean flag or anything else.
 */
export function splitFlag(arg: string): { flag: string; value: string } | undefined {
  const eq = arg.indexOf('=');
  if (!arg.startsWith('-') || eq < 0) return undefined;
  return { flag: arg.slice(0, eq), value: arg.slice(eq + 1) };
}

/** The values of every `flag` in `args`, in their order (vmagent takes some flags once per destination). */
export function flagValues(args: readonly string[], flag: string): string[] {
  return args.flatMap((a) => {
    const split = splitFlag(a);
    return split?.flag === flag ? [split.value] : [];
  });
}

export class ManifestError extends Error {
  constructor(file: string, what: string) {
    super(`${file}: ${what}`);
    this.name = 'ManifestError';
  }
}

type Json = unknown;
const isRecord = (x: Json): x is Record<string, Json> => typeof x === 'object' && x !== null && !Array.isArray(x);
const isStringArray = (x: Json): x is string[] => Array.isArray(x) && x.every((a) => typeof a === 'string');

function readYaml(file: string): Json {
  return parse(readFileSync(file, 'utf8')) as Json;
}

function readAllYaml(file: string): Json[] {
  return readFileSync(file, 'utf8')
    .split(/^---$/m)
    .map((doc) => parse(doc) as Json)
    .filter((d) => d !== null && d !== undefined);
}

/** The value of the JSON-patch op `replace` of the first container's args. */
function replacedArgs(file: string): string[] {
  const ops = readYaml(file);
  if (!Array.isArray(ops)) throw new ManifestError(file, 'expected a JSON patch (a list of operations)');
  const op = ops.find((o: Json) => isRecord(o) && o['op'] === 'replace' && o['path'] === ARGS_PATH);
  if (!isRecord(op) || !isStringArray(op['value'])) throw new ManifestError(file, `no "replace" of ${ARGS_PATH} with a list of strings`);
  return op['value'];
}

interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { configMapKeyRef?: { name: string; key: string }; fieldRef?: { fieldPath: string } };
}

function configMapLiteral(name: string, key: string): string {
  const file = join(MANIFESTS_DIR, 'aggregator', 'kustomization.yaml');
  const k = readYaml(file);
  const gens = isRecord(k) && Array.isArray(k['configMapGenerator']) ? k['configMapGenerator'] : [];
  for (const g of gens) {
    if (!isRecord(g) || g['name'] !== name || !isStringArray(g['literals'])) continue;
    for (const lit of g['literals']) if (lit.startsWith(`${key}=`)) return lit.slice(key.length + 1);
  }
  throw new ManifestError(file, `no literal ${key} in configMapGenerator ${name}`);
}

function envSource(file: string, e: EnvVar): EnvSource {
  if (e.value !== undefined) return { value: e.value };
  const cm = e.valueFrom?.configMapKeyRef;
  if (cm) return { value: configMapLiteral(cm.name, cm.key) };
  if (e.valueFrom?.fieldRef?.fieldPath === 'metadata.name') return { podName: true };
  throw new ManifestError(file, `env ${e.name}: only value, configMapKeyRef and fieldRef metadata.name are understood`);
}

function shardStatefulSet(file: string): { args: string[]; env: EnvVar[] } {
  for (const doc of readAllYaml(file)) {
    if (!isRecord(doc) || doc['kind'] !== 'StatefulSet') continue;
    const c = (doc as { spec?: { template?: { spec?: { containers?: Array<{ args?: Json; env?: EnvVar[] }> } } } }).spec?.template?.spec?.containers?.[0];
    if (!c || !isStringArray(c.args)) throw new ManifestError(file, 'the StatefulSet has no container args');
    return { args: c.args, env: c.env ?? [] };
  }
  throw new ManifestError(file, `no StatefulSet ${SHARD_SET}`);
}

/** The overlays `dir` builds on (its `resources` that are directories with a kustomization). */
function bases(dir: string): string[] {
  const k = readYaml(join(dir, 'kustomization.yaml'));
  const res = isRecord(k) && isStringArray(k['resources']) ? k['resources'] : [];
  return res.map((r) => resolve(dir, r)).filter((d) => existsSync(join(d, 'kustomization.yaml')));
}

function routerReplicas(dir: string): number | undefined {
  const k = readYaml(join(dir, 'kustomization.yaml'));
  const patches = isRecord(k) && Array.isArray(k['patches']) ? k['patches'] : [];
  for (const p of patches) {
    if (!isRecord(p) || typeof p['patch'] !== 'string') continue;
    const doc = parse(p['patch']) as Json;
    if (!isRecord(doc) || doc['kind'] !== 'Deployment') continue;
    const replicas = (doc as { spec?: { replicas?: unknown } }).spec?.replicas;
    if (typeof replicas === 'number') return replicas;
  }
  for (const b of bases(dir)) {
    const r = routerReplicas(b);
    if (r !== undefined) return r;
  }
  return undefined;
}

/** The first of `dir` and the overlays it builds on that holds `file`. */
function findInChain(dir: string, file: string): string | undefined {
  if (existsSync(join(dir, file))) return join(dir, file);
  for (const b of bases(dir)) {
    const f = findInChain(b, file);
    if (f !== undefined) return f;
  }
  return undefined;
}

/** The tier of manifests/overlays/<overlay>, as shipped. */
export function readTopology(overlay: string, manifestsDir = MANIFESTS_DIR): TopologySpec {
  const dir = join(manifestsDir, 'overlays', overlay);
  const routerFile = join(dir, 'router-args.yaml');
  const routerArgs = replacedArgs(routerFile);
  const routers = routerReplicas(dir);
  if (routers === undefined) throw new ManifestError(join(dir, 'kustomization.yaml'), 'no Deployment patch with spec.replicas for the routers');
  const setFile = findInChain(dir, 'shards.yaml');
  if (setFile === undefined) throw new ManifestError(dir, 'no shards.yaml in the overlay or the overlays it builds on');
  const set = shardStatefulSet(setFile);
  const shardArgsFile = join(dir, 'shard-args.yaml');
  let shardArgs = set.args;
  const env: EnvVar[] = [...set.env];
  if (existsSync(shardArgsFile)) {
    shardArgs = replacedArgs(shardArgsFile);
    const ops = readYaml(shardArgsFile) as Json[];
    for (const op of ops) if (isRecord(op) && op['op'] === 'add' && op['path'] === ENV_ADD_PATH) env.push(op['value'] as EnvVar);
  }
  const shards = flagValues(routerArgs, REMOTE_WRITE_URL).length;
  if (shards === 0) throw new ManifestError(routerFile, 'no -remoteWrite.url');
  return { overlay, routers, routerArgs, shards, shardArgs, shardEnv: new Map(env.map((e) => [e.name, envSource(setFile, e)])) };
}

export interface Localization {
  /** `$(NAME)` values (Kubernetes expands them in args from the container's env). */
  readonly env: ReadonlyMap<string, string>;
  /** The value of `-httpListenAddr`. */
  readonly listen: string;
  /** In-cluster `host:port` → loopback `host:port`, for every URL in a flag value. */
  readonly hosts: ReadonlyMap<string, string>;
  /** In-container directory → local directory, for every absolute path in a flag value. */
  readonly paths: ReadonlyMap<string, string>;
}

export class LocalizeError extends Error {
  override readonly name = 'LocalizeError';
}

/**
 * The same flags with addresses, ports and paths made local (pure). `$(VAR)` is expanded first, as
 * Kubernetes does; a URL host or a path with no local counterpart is an error, never passed on.
 */
export function localizeArgs(args: readonly string[], l: Localization): string[] {
  return args.filter((a) => !CREDENTIAL_FLAG.test(a)).map((raw) => {
    const arg = raw.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (_, name: string) => {
      const v = l.env.get(name);
      if (v === undefined) throw new LocalizeError(`${raw}: no value for $(${name})`);
      return v;
    });
    const split = splitFlag(arg);
    if (split === undefined) return arg;
    const { flag, value } = split;
    if (flag === '-httpListenAddr') return `${flag}=${l.listen}`;
    if (/^https?:\/\//.test(value)) {
      const url = new URL(value);
      const local = l.hosts.get(url.host);
      if (local === undefined) throw new LocalizeError(`${raw}: no loopback address for ${url.host}`);
      url.host = local;
      return `${flag}=${url.href}`;
    }
    if (value.startsWith('/')) {
      const prefix = [...l.paths.keys()].filter((p) => value === p || value.startsWith(p.endsWith('/') ? p : `${p}/`)).sort((a, b) => b.length - a.length)[0];
      if (prefix === undefined) throw new LocalizeError(`${raw}: no local directory for ${value}`);
      return `${flag}=${join(l.paths.get(prefix) ?? '', value.slice(prefix.length))}`;
    }
    return arg;
  });
}

/** The in-cluster `host:port` of each router `-remoteWrite.url`, in order (shard i's address). */
export function shardHosts(spec: TopologySpec): string[] {
  return flagValues(spec.routerArgs, REMOTE_WRITE_URL).map((url) => new URL(url).host);
}
