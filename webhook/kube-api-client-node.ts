/**
 * The transport of the webhook's API calls from @kubernetes/client-node 1.x (ESM; 2.x needs
 * Node 22), for kubeconfigs whose user needs what webhook/kube-api.ts does not do itself: exec
 * credential plugins, auth providers, impersonation, proxies (a developer's kubeconfig; never in
 * a cluster). Loaded only then: it brings ~2 500 generated modules, ~70 MB of RSS.
 *
 * client-node supplies only the agent (TLS, proxy) and the headers (the plugin's token,
 * Impersonate-User, basic auth) of each call; the calls, their timeouts and their errors are
 * kube-api.ts's own (`kubeApiOver`), the same as for every other kubeconfig.
 */
import { Agent } from 'node:http';
import type { RequestOptions } from 'node:https';
import { KubeConfig } from '@kubernetes/client-node';
import type { WebhookSettings } from './config.ts';
import { kubeApiOver, transportCaller, type KubeApi, type Transport } from './kube-api.ts';

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
    const server = kc.getCurrentCluster()?.server ?? '';
    // Per call, as client-node's own API classes do: a plugin's token may have expired since.
    const transport = async (): Promise<Transport> => {
      const opts: RequestOptions = {};
      await kc.applyToHTTPSOptions(opts);
      if (!(opts.agent instanceof Agent)) throw new Error('@kubernetes/client-node made no agent for the API server');
      const headers: Record<string, string> = {};
      if (opts.headers !== undefined && !Array.isArray(opts.headers)) {
        for (const [name, value] of Object.entries(opts.headers)) if (value !== undefined) headers[name] = String(value);
      }
      if (typeof opts.auth === 'string') headers['Authorization'] = `Basic ${Buffer.from(opts.auth).toString('base64')}`;
      return { agent: opts.agent, headers };
    };
    return kubeApiOver(server, transportCaller(server, transport), kube.timeoutMs, client);
  } catch (cause) {
    return { unavailable: `cannot load the API client configuration: ${(cause as Error).message}` };
  }
}
