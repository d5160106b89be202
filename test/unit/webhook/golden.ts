/**
 * Golden pod fixtures: `test/fixtures/<case>.yaml` is what the API server sends,
 * `<case>.injected.yaml` what the webhook makes of it. REFRESH_GOLDEN=1 rewrites the goldens;
 * otherwise a mismatch fails with one line per differing JSON pointer.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import jsonPatch from 'fast-json-patch';
import { parse, stringify } from 'yaml';
import type { RawPod } from '../../../webhook/pod.ts';

export const FIXTURES = fileURLToPath(new URL('../../fixtures/', import.meta.url));
// Only this harness reads the environment: it is a test switch, not a setting of the webhook.
export const REFRESH = process.env['REFRESH_GOLDEN'] === '1';

export function loadPod(name: string): RawPod {
  return parse(readFileSync(`${FIXTURES}${name}.yaml`, 'utf8')) as RawPod;
}

export function goldenPath(name: string): string {
  return `${FIXTURES}${name}.injected.yaml`;
}

/** Returns '' when `actual` matches the golden (or the golden was just rewritten), else a readable diff. */
export function checkGolden(name: string, actual: unknown, header: string): string {
  const path = goldenPath(name);
  if (REFRESH) {
    const comment = header.split('\n').map((l) => `# ${l}`).join('\n');
    writeFileSync(path, `${comment}\n${stringify(actual, { lineWidth: 120 })}`);
    return '';
  }
  let expected: unknown;
  try {
    expected = parse(readFileSync(path, 'utf8'));
  } catch (cause) {
    return `cannot read golden ${path} (run with REFRESH_GOLDEN=1 to create it): ${(cause as Error).message}`;
  }
  return describeDifference(expected, actual);
}

export function describeDifference(expected: unknown, actual: unknown): string {
  const ops = jsonPatch.compare(expected as object, actual as object);
  if (ops.length === 0) return '';
  const show = (v: unknown): string => (v === undefined ? '(absent)' : JSON.stringify(v));
  const lines = ops.map((op) => {
    let before: unknown;
    try {
      before = jsonPatch.getValueByPointer(expected, op.path);
    } catch {
      before = undefined;
    }
    const after = 'value' in op ? op.value : undefined;
    return `  ${op.path}: expected ${show(before)}, got ${show(after)}`;
  });
  return `differs from the golden at ${ops.length} place(s):\n${lines.join('\n')}\n(REFRESH_GOLDEN=1 rewrites the golden if the change is intended)`;
}
