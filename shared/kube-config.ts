/**
 * The API server's address and credentials for the gateway and the recorder: a kubeconfig file
 * when the setting names one (KUBECONFIG), else the pod's own service account (in-cluster). Their
 * config modules refuse to start without either (shared/env-reader.ts `inCluster`).
 */
import { KubeConfig } from '@kubernetes/client-node';

export function loadKubeConfig(file: string | undefined): KubeConfig {
  const kc = new KubeConfig();
  if (file !== undefined) kc.loadFromFile(file);
  else kc.loadFromCluster();
  return kc;
}
