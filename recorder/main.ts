#!/usr/bin/env node
/**
 * `jobmetrics-recorder`: the imperative shell around startRecorder. Reads the environment once,
 * starts, and on SIGTERM delivers what is queued before it exits (docs/outcomes.md).
 */
import { createLogger } from '../shared/log.ts';
import { handleCommandLine } from '../shared/command-line.ts';
import { parseRecorderConfig, RECORDER_COMMAND_LINE } from './config.ts';
import { startRecorder } from './recorder.ts';

handleCommandLine(process.argv.slice(2), RECORDER_COMMAND_LINE);
const parsed = parseRecorderConfig(process.env);
const log = createLogger({ component: 'jobmetrics-recorder', level: parsed.ok ? parsed.config.logLevel : 'info' });
if (!parsed.ok) {
  for (const e of parsed.errors) log.error(`invalid setting ${e.setting}: ${e.message}`, { setting: e.setting });
  process.exit(2);
}
let recorder;
try {
  recorder = await startRecorder(parsed.config, { log });
} catch (error) {
  log.error('cannot start', { error });
  process.exit(1);
}
let stopping = false;
for (const sig of ['SIGTERM', 'SIGINT'] as const) {
  process.on(sig, () => {
    if (stopping) process.exit(1);
    stopping = true;
    log.info('signal received: delivering what is queued, then exiting', { signal: sig });
    void recorder.close().then(() => process.exit(0));
  });
}
