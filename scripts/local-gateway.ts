/**
 * The gateway (gateway/) on loopback for the demo and the tests: the same settings the manifests
 * give it, with the aggregation interval of the local stack and a margin for its path.
 */
import { parseGatewayConfig } from '../gateway/config.ts';
import { startGateway, type Gateway } from '../gateway/gateway.ts';
import type { Logger } from '../shared/log.ts';

export interface LocalGatewayOptions {
  /** The aggregator's remote-write URL (a stack's vmagent, or a tier's routers). */
  readonly aggregatorUrl: string;
  /** The aggregator's `interval`, e.g. `1s`. */
  readonly aggregationInterval: string;
  /** Added to the interval for the path (a router hop), e.g. `1s`. */
  readonly birthMargin: string;
  /** The aggregator's `staleness_interval`; default the gateway's (15m). */
  readonly staleness?: string;
  readonly log: Logger;
}

/** Starts the gateway on a free loopback port; throws with the settings at fault. */
export async function startLocalGateway(o: LocalGatewayOptions): Promise<Gateway> {
  const parsed = parseGatewayConfig({
    JOBMETRICS_LISTEN: '127.0.0.1:0',
    JOBMETRICS_AGGREGATOR_URL: o.aggregatorUrl,
    JOBMETRICS_AGGREGATION_INTERVAL: o.aggregationInterval,
    JOBMETRICS_BIRTH_MARGIN: o.birthMargin,
    // On loopback, written only by this machine's own processes: no pod identity to check.
    JOBMETRICS_WRITER_AUTH: 'none',
    ...(o.staleness !== undefined ? { JOBMETRICS_STALENESS: o.staleness } : {}),
  });
  if (!parsed.ok) throw new Error(`gateway settings: ${parsed.errors.map((e) => `${e.setting} ${e.message}`).join('; ')}`);
  return startGateway(parsed.config, { log: o.log });
}
