/**
 * Node's built-in modules as the sidecar loads them: through process.getBuiltinModule, never an ES
 * `import`. An ES import of a built-in module builds its namespace by reading every export, and
 * some exports are getters that load more modules for good: node:http's `WebSocket`, `CloseEvent`
 * and `MessageEvent` load undici (+12 MB of RSS on Node 24), node:fs's `promises` loads
 * fs/promises and with it readline, the REPL history, file streams and watchers (30 modules,
 * +3.3 MB), none of which the sidecar uses. process.getBuiltinModule returns the module object
 * itself, its getters untouched (docs/benchmarks.md, "Sidecar design costs").
 */
export const http = process.getBuiltinModule('node:http');
export const fs = process.getBuiltinModule('node:fs');
