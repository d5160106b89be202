#!/usr/bin/env node
/**
 * `jobmetrics-sidecar`: the imperative shell around runSidecar. It reads the environment once,
 * wires signals, and always exits 0 — the sidecar never changes a Job's outcome (README.md
 * "What is guaranteed, and what can be lost").
 */
import { createLogger } from '../shared/log.ts';
import { handleCommandLine } from '../shared/command-line.ts';
import { parseSidecarConfig, SIDECAR_COMMAND_LINE } from './config.ts';
import { runSidecar } from './sidecar.ts';

handleCommandLine(process.argv.slice(2), SIDECAR_COMMAND_LINE);
const parsed = parseSidecarConfig(process.env);
const log = createLogger({ component: 'jobmetrics-sidecar', level: parsed.ok ? parsed.config.logLevel : parsed.logLevel });
const terminate = new AbortController();
let signals = 0;
for (const sig of ['SIGTERM', 'SIGINT'] as const) {
  process.on(sig, () => {
    signals++;
    log.info('signal received, flushing', { signal: sig });
    terminate.abort();
    // A second signal means "now": the flush deadline is still honoured, but do not wait on it.
    if (signals > 1) process.exit(0);
  });
}
// Whatever goes wrong, the Job must not see a failing container.
process.on('uncaughtException', (error) => {
  log.error('unexpected error; exiting 0 so the Job is not affected', { error });
  process.exit(0);
});
process.on('unhandledRejection', (error) => {
  log.error('unexpected rejection; exiting 0 so the Job is not affected', { error });
  process.exit(0);
});

if (!parsed.ok) {
  for (const e of parsed.errors) log.error(`invalid setting ${e.setting}: ${e.message}; the sidecar does nothing`, { setting: e.setting });
  if (parsed.mode === 'native') {
    // An exit would only make the kubelet restart us; idle until SIGTERM.
    // The timer keeps the event loop alive: a pending promise alone would end Node with code 13.
    const keepAlive = setInterval(() => {}, 3_600_000);
    await new Promise<void>((resolve) => terminate.signal.addEventListener('abort', () => resolve(), { once: true }));
    clearInterval(keepAlive);
  }
  process.exit(0);
}

await runSidecar(parsed.config, { log, selfPid: process.pid, terminate: terminate.signal });
process.exit(0);
