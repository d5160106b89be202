#!/usr/bin/env node
/**
 * `jobmetrics-gateway`: the imperative shell around startGateway. Reads the environment once,
 * starts, and on SIGTERM stops taking requests and delivers everything it holds before it exits
 * (docs/gateway.md).
 */
import { createLogger } from '../shared/log.ts';
import { basicAuthorization, ensureAggregatorCredentials } from './aggregator-credentials.ts';
import { handleCommandLine } from '../shared/command-line.ts';
import { GATEWAY_COMMAND_LINE, parseGatewayConfig } from './config.ts';
import { startGateway } from './gateway.ts';

handleCommandLine(process.argv.slice(2), GATEWAY_COMMAND_LINE);
const parsed = parseGatewayConfig(process.env);
const log = createLogger({ component: 'jobmetrics-gateway', level: parsed.ok ? parsed.config.logLevel : 'info' });
if (!parsed.ok) {
  for (const e of parsed.errors) log.error(`invalid setting ${e.setting}: ${e.message}`, { setting: e.setting });
  process.exit(2);
}
const config = parsed.config;
let aggregatorAuthorization: string | undefined;
if (config.aggregatorCredentials !== undefined) {
  // Nothing can be forwarded without them: retry until the API server gives them (each failure
  // logged), as the kubelet would restart a gateway that exited.
  const where = config.aggregatorCredentials;
  for (let attempt = 1; aggregatorAuthorization === undefined; attempt++) {
    try {
      const c = await ensureAggregatorCredentials({ kubeconfig: config.kubeconfig, ...where });
      log.info(c.created ? 'aggregator credentials created' : 'aggregator credentials read', { secret: `${where.namespace}/${where.name}` });
      aggregatorAuthorization = basicAuthorization(c);
    } catch (error) {
      log.error('cannot get the aggregator credentials; trying again', { error, attempt, secret: `${where.namespace}/${where.name}` });
      await new Promise((r) => setTimeout(r, Math.min(30_000, 1_000 * 2 ** Math.min(attempt, 5))));
    }
  }
}
let gateway;
try {
  gateway = await startGateway(config, { log, ...(aggregatorAuthorization !== undefined && { aggregatorAuthorization }) });
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
