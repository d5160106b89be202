#!/usr/bin/env node
/**
 * `jobmetrics-gateway`: the imperative shell around startGateway. Reads the environment once,
 * starts, and on SIGTERM stops taking requests and delivers everything it holds before it exits
 * (docs/gateway.md).
 */
import { createLogger } from '../shared/log.ts';
import { parseGatewayConfig } from './config.ts';
import { startGateway } from './gateway.ts';

const parsed = parseGatewayConfig(process.env);
const log = createLogger({ component: 'jobmetrics-gateway', level: parsed.ok ? parsed.config.logLevel : 'info' });
if (!parsed.ok) {
  for (const e of parsed.errors) log.error(`invalid setting ${e.setting}: ${e.message}`, { setting: e.setting });
  process.exit(2);
}
let gateway;
try {
  gateway = await startGateway(parsed.config, { log });
} catch (error) {
  log.error('cannot start', { error, listen: parsed.config.listen });
  process.exit(1);
}
let stopping = false;
for (const sig of ['SIGTERM', 'SIGINT'] as const) {
  process.on(sig, () => {
    if (stopping) {
      log.warn('second signal: exiting now; held samples are lost', { signal: sig });
      process.exit(1);
    }
    stopping = true;
    log.info('signal received: delivering what is held, then exiting', { signal: sig });
    void gateway.close().then(() => process.exit(0));
  });
}
