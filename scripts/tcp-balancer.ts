/**
 * A Kubernetes Service on loopback, for the local aggregator tier: one address in front of several
 * backends (the routers), each new TCP connection sent to the next backend in turn. A backend that
 * refuses the connection (stopped, restarting) is skipped for that connection, as a Service skips an
 * endpoint that is not ready; a connection already made to a backend that dies is closed, and the
 * client reconnects — as with kube-proxy, where an established connection stays with its endpoint.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';

export interface Balancer {
  /** `127.0.0.1:<port>`, one per listening port. */
  readonly addresses: readonly string[];
  /** Connections handed to each backend so far, by backend `host:port`. */
  readonly connections: ReadonlyMap<string, number>;
  close(): Promise<void>;
}

function dial(target: string): Promise<Socket> {
  const i = target.lastIndexOf(':');
  return new Promise((resolveDial, rejectDial) => {
    const s = connect({ host: target.slice(0, i), port: Number(target.slice(i + 1)) });
    s.once('connect', () => {
      s.removeAllListeners('error');
      resolveDial(s);
    });
    s.once('error', rejectDial);
  });
}

/**
 * Listens on `ports` free loopback ports and balances over `backends()` (read per connection).
 * Several ports stand for one Service address seen by many pods: an HTTP client pools its
 * connections per address, so a load generator that simulates many pods in one process spreads
 * them over the ports to get the many connections that many pods would open.
 */
export async function startBalancer(backends: () => readonly string[], ports = 1): Promise<Balancer> {
  const counts = new Map<string, number>();
  const open = new Set<Socket>();
  let next = 0;
  const onConnection = (client: Socket): void => {
    open.add(client);
    client.pause();
    client.on('error', () => {});
    client.once('close', () => open.delete(client));
    void (async () => {
      const list = backends();
      for (let tries = 0; tries < list.length; tries++) {
        const target = list[next++ % list.length];
        if (target === undefined) break;
        try {
          const upstream = await dial(target);
          if (client.destroyed) {
            upstream.destroy();
            return;
          }
          counts.set(target, (counts.get(target) ?? 0) + 1);
          open.add(upstream);
          upstream.once('close', () => {
            open.delete(upstream);
            client.destroy();
          });
          upstream.on('error', () => upstream.destroy());
          client.once('close', () => upstream.destroy());
          client.pipe(upstream);
          upstream.pipe(client);
          client.resume();
          return;
        } catch {
          // refused: try the next backend
        }
      }
      client.destroy();
    })();
  };
  const servers: Server[] = [];
  const addresses: string[] = [];
  for (let i = 0; i < ports; i++) {
    const server = createServer(onConnection);
    await new Promise<void>((resolveListen, rejectListen) => {
      server.once('error', rejectListen);
      server.listen(0, '127.0.0.1', () => resolveListen());
    });
    const addr = server.address();
    if (addr === null || typeof addr === 'string') throw new Error('balancer: no TCP address');
    servers.push(server);
    addresses.push(`127.0.0.1:${addr.port}`);
  }
  return {
    addresses,
    connections: counts,
    close: async () => {
      for (const s of open) s.destroy();
      await Promise.all(servers.map((server) => new Promise<void>((resolveClose) => server.close(() => resolveClose()))));
    },
  };
}
