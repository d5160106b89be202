/**
 * Where the local cluster keeps its state, and how `up`, `down` and the tests tell whether one is
 * running. One cluster at a time per machine: it owns a fixed bridge and addresses.
 */
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

export interface ClusterEnv {
  readonly JOBMETRICS_CLUSTER_DIR?: string | undefined;
}

/** `$JOBMETRICS_CLUSTER_DIR`, else `~/.cache/jobmetrics/cluster`. */
export function clusterDir(env: ClusterEnv): string {
  const set = env.JOBMETRICS_CLUSTER_DIR;
  return set !== undefined && set !== '' ? set : join(homedir(), '.cache', 'jobmetrics', 'cluster');
}

export interface SupervisorFiles {
  readonly pid: string;
  readonly ready: string;
  readonly failed: string;
  readonly log: string;
}

export function supervisorFiles(dir: string): SupervisorFiles {
  return { pid: join(dir, 'supervisor.pid'), ready: join(dir, 'ready.json'), failed: join(dir, 'failed.txt'), log: join(dir, 'supervisor.log') };
}

export interface ReadyInfo {
  readonly kubeconfig: string;
  readonly prometheusUrl: string;
  /** The `Authorization` header Prometheus needs (the aggregator's credentials). */
  readonly prometheusAuthorization: string;
  /** host:port of the registry beside the node (scripts/cluster/registry.ts). */
  readonly registry?: string;
  readonly pid: number;
}

/** The running supervisor's PID, if its pid file names a live process. */
export function runningSupervisor(dir: string): number | undefined {
  const { pid } = supervisorFiles(dir);
  if (!existsSync(pid)) return undefined;
  const n = Number(readFileSync(pid, 'utf8').trim());
  if (!Number.isInteger(n) || n <= 0) return undefined;
  try {
    process.kill(n, 0);
    return n;
  } catch {
    return undefined;
  }
}

export function readReady(dir: string): ReadyInfo | undefined {
  const { ready } = supervisorFiles(dir);
  if (!existsSync(ready)) return undefined;
  return JSON.parse(readFileSync(ready, 'utf8')) as ReadyInfo;
}
