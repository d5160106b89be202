/**
 * TokenReview against the API server (authentication.k8s.io/v1), as writer-identity.ts asks for
 * it: with the gateway's own service account (RBAC: create tokenreviews), from the pod's
 * in-cluster credentials or a kubeconfig file. Failures are values, never throws.
 */
import { AuthenticationV1Api, KubeConfig } from '@kubernetes/client-node';
import type { ReviewFn } from './writer-identity.ts';

export function apiTokenReview(opts: { readonly kubeconfig: string | undefined; readonly timeoutMs: number }): ReviewFn {
  const kc = new KubeConfig();
  if (opts.kubeconfig !== undefined) kc.loadFromFile(opts.kubeconfig);
  else kc.loadFromCluster();
  const api = kc.makeApiClient(AuthenticationV1Api);
  return async (token, audience) => {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${opts.timeoutMs} ms`)), opts.timeoutMs);
    });
    try {
      const review = await Promise.race([
        api.createTokenReview({ body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token, audiences: [audience] } } }),
        timeout,
      ]);
      return { status: review.status ?? {} };
    } catch (cause) {
      return { error: new Error(`TokenReview at ${kc.getCurrentCluster()?.server ?? 'the API server'}: ${cause instanceof Error ? cause.message : String(cause)}`, { cause }) };
    } finally {
      clearTimeout(timer);
    }
  };
}
