/** The version reported in logs and the User-Agent; read once from the project's package.json. */
import { fs } from './node-builtins.ts';

function readVersion(): string {
  // Compiled: dist/shared/version.js; from source: shared/version.ts.
  for (const candidate of ['../../package.json', '../package.json']) {
    try {
      const pkg = JSON.parse(fs.readFileSync(new URL(candidate, import.meta.url), 'utf8')) as { name?: unknown; version?: unknown };
      if (pkg.name === 'jobmetrics' && typeof pkg.version === 'string') return pkg.version;
    } catch {
      // Not there: try the next place. A trimmed image without package.json reports "unknown".
    }
  }
  return 'unknown';
}

export const VERSION = readVersion();
