/**
 * The webhook's API calls through @kubernetes/client-node 1.x (ESM; 2.x needs Node 22), for
 * kubeconfigs whose user needs what webhook/kube-api.ts does not do itself: exec credential
 * plugins, auth providers, impersonation, proxies (a developer's kubeconfig; never in a cluster).
 * Loaded only then: it brings ~2 500 generated modules, ~70 MB of RSS.
 *
 * Every call has a timeout (an AbortSignal set through a client middleware) and every error says
 * which call, on what, with what status and body excerpt (KubeApiError).
 */
import {
  AdmissionregistrationV1Api,
  ApiException,
  BatchV1Api,
  CoreV1Api,
  KubeConfig,
  Observable,
  PatchStrategy,
  VersionApi,
  setHeaderOptions,
  type ConfigurationOptions,
} from '@kubernetes/client-node';
import type { Operation } from 'fast-json-patch';
import type { BootstrapApi, WebhookConfigView } from './bootstrap.ts';
import type { WebhookSettings } from './config.ts';
import { KubeApiError, type KubeApi } from './kube-api.ts';

const statusOf = (e: unknown): number | undefined => (e instanceof ApiException ? e.code : undefined);

/** Per-call options: an abort signal after `timeoutMs`, chained with the caller's signal if any. */
function withTimeout(timeoutMs: number, signal?: AbortSignal, base?: ConfigurationOptions): ConfigurationOptions {
  const timeout = AbortSignal.timeout(timeoutMs);
  const combined = signal ? AbortSignal.any([timeout, signal]) : timeout;
  return {
    ...base,
    middleware: [
      ...(base?.middleware ?? []),
      {
        pre: (ctx) => {
          ctx.setSignal(combined);
          return new Observable(Promise.resolve(ctx));
        },
        post: (res) => new Observable(Promise.resolve(res)),
      },
    ],
    middlewareMergeStrategy: 'append',
  };
}

/**
 * The client from a kubeconfig file or the in-cluster service account, or why there is none.
 * Creating it makes no call; the first call shows whether the API server answers.
 */
export function createClientNodeApi(kube: WebhookSettings['kube'], client = '@kubernetes/client-node'): KubeApi | { unavailable: string } {
  const kc = new KubeConfig();
  try {
    if (kube.kubeconfig !== undefined) kc.loadFromFile(kube.kubeconfig);
    else if (kube.inCluster) kc.loadFromCluster();
    else return { unavailable: 'no kubeconfig set and not running in a cluster (KUBERNETES_SERVICE_HOST unset)' };
  } catch (cause) {
    return { unavailable: `cannot load the API client configuration: ${(cause as Error).message}` };
  }
  const server = kc.getCurrentCluster()?.server ?? '(unknown)';
  const core = kc.makeApiClient(CoreV1Api);
  const batch = kc.makeApiClient(BatchV1Api);
  const admission = kc.makeApiClient(AdmissionregistrationV1Api);
  const version = kc.makeApiClient(VersionApi);
  const t = kube.timeoutMs;

  const bootstrap: BootstrapApi = {
    async readSecret(namespace, name) {
      try {
        const s = await core.readNamespacedSecret({ name, namespace }, withTimeout(t));
        return { ...(s.data !== undefined && { data: s.data }), ...(s.metadata?.resourceVersion !== undefined && { resourceVersion: s.metadata.resourceVersion }) };
      } catch (e) {
        if (statusOf(e) === 404) return null;
        throw new KubeApiError('get', `secret ${namespace}/${name}`, e);
      }
    },
    async createSecret(namespace, name, data) {
      try {
        await core.createNamespacedSecret(
          {
            namespace,
            body: {
              apiVersion: 'v1',
              kind: 'Secret',
              type: 'kubernetes.io/tls',
              metadata: { name, namespace, labels: { 'app.kubernetes.io/name': 'jobmetrics', 'app.kubernetes.io/component': 'webhook' } },
              data,
            },
          },
          withTimeout(t),
        );
        return 'created';
      } catch (e) {
        if (statusOf(e) === 409) return 'exists';
        throw new KubeApiError('create', `secret ${namespace}/${name}`, e);
      }
    },
    async replaceSecret(namespace, name, data, resourceVersion) {
      try {
        await core.replaceNamespacedSecret(
          {
            name,
            namespace,
            body: { apiVersion: 'v1', kind: 'Secret', type: 'kubernetes.io/tls', metadata: { name, namespace, resourceVersion }, data },
          },
          withTimeout(t),
        );
        return 'replaced';
      } catch (e) {
        if (statusOf(e) === 409) return 'conflict';
        throw new KubeApiError('update', `secret ${namespace}/${name}`, e);
      }
    },
    async readWebhookConfiguration(name) {
      try {
        const c = await admission.readMutatingWebhookConfiguration({ name }, withTimeout(t));
        const view: WebhookConfigView = {
          webhooks: (c.webhooks ?? []).map((w) => ({
            name: w.name,
            clientConfig: w.clientConfig.caBundle !== undefined ? { caBundle: w.clientConfig.caBundle } : {},
          })),
        };
        return view;
      } catch (e) {
        if (statusOf(e) === 404) return null;
        throw new KubeApiError('get', `mutatingwebhookconfiguration ${name}`, e);
      }
    },
    async patchWebhookConfiguration(name, ops: Operation[]) {
      try {
        await admission.patchMutatingWebhookConfiguration(
          { name, body: ops },
          withTimeout(t, undefined, setHeaderOptions('Content-Type', PatchStrategy.JsonPatch)),
        );
      } catch (e) {
        throw new KubeApiError('patch', `mutatingwebhookconfiguration ${name} caBundle`, e);
      }
    },
  };

  return {
    server,
    client,
    bootstrap,
    async serverVersion() {
      try {
        const v = await version.getCode(withTimeout(t));
        return { ok: true, version: { major: v.major, minor: v.minor, gitVersion: v.gitVersion } };
      } catch (e) {
        return { ok: false, error: new KubeApiError('get', `${server}/version`, e).message };
      }
    },
    fetchJob: async (namespace, name, signal) => {
      try {
        const job = await batch.readNamespacedJob({ name, namespace }, withTimeout(t, signal));
        return {
          ...(job.metadata?.uid !== undefined && { uid: job.metadata.uid }),
          ownerReferences: (job.metadata?.ownerReferences ?? []).map((o) => ({
            apiVersion: o.apiVersion,
            kind: o.kind,
            name: o.name,
            ...(o.controller !== undefined && { controller: o.controller }),
          })),
        };
      } catch (e) {
        if (statusOf(e) === 404) return null;
        throw new KubeApiError('get', `job ${namespace}/${name}`, e);
      }
    },
  };
}
