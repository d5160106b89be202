/**
 * node:http without the cost of importing it as an ES module: an ES import of a built-in module
 * reads every one of its exports to build the namespace, and node:http's `WebSocket`,
 * `CloseEvent` and `MessageEvent` are getters that load undici. On Node 24 that is +14 MB of RSS
 * in the sidecar for a client it never uses (docs/benchmarks.md "Sidecar design costs").
 * process.getBuiltinModule returns the module object itself, its getters untouched.
 */
export const http = process.getBuiltinModule('node:http');
