/**
 * Free TCP ports on loopback for the local processes of the demo, the tests and the benchmarks.
 *
 * "Listen on port 0, read the port, close" races: the port returns to the kernel's ephemeral range
 * (net.ipv4.ip_local_port_range, 32768–60999 by default), where the next outgoing connection of
 * any of the dozens of processes a test runs may take it before the intended server binds it. So
 * ports come from below that range, handed out once per process from a random start, and each is
 * checked by binding it.
 */
import { createServer } from 'node:net';

const LOW = 20_000;
const HIGH = 32_000;
let next = LOW + Math.floor(Math.random() * (HIGH - LOW));

function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

/** A port no other process on this machine listens on, and that this process has not handed out. */
export async function freePort(): Promise<number> {
  for (let tries = 0; tries < HIGH - LOW; tries++) {
    const port = next;
    next = next + 1 >= HIGH ? LOW : next + 1;
    if (await canBind(port)) return port;
  }
  throw new Error(`no free TCP port on 127.0.0.1 between ${LOW} and ${HIGH}`);
}
