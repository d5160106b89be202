/**
 * Integration tests run the compiled programs, as a pod would (`npm ci` builds them). A test run
 * after an edit must not use a stale build, so the first suite that needs it compiles once.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../../scripts/local-pod.ts';

let built = false;

export function ensureBuilt(): void {
  if (built) return;
  execFileSync(process.execPath, [join(PROJECT_ROOT, 'node_modules/typescript/bin/tsc'), '-p', join(PROJECT_ROOT, 'tsconfig.build.json')], {
    stdio: 'inherit',
  });
  built = true;
}
