/**
 * Kept-alive upstream connections for plain HTTP through the egress proxy:
 * one `http.Agent` per checked address and port, so that a sandbox's run of
 * requests to one server does not dial it (and its upstream proxy) anew for
 * each. Every request is still checked against the policy before it is
 * given an agent; the pool only reuses connections to an address that the
 * policy allowed. Changing the upstream proxy empties it.
 */
import http from "node:http";
import type { Duplex } from "node:stream";

/** Idle connections kept per address and port. */
const MAX_IDLE = 4;
/** An idle connection is closed after this long, ms (below common servers' keep-alive timeouts). */
const IDLE_MS = 4000;

/** The agents of one sandbox's egress path. */
export class UpstreamPool {
  private readonly agents = new Map<string, http.Agent>();
  private readonly connect: (address: string, port: number) => Promise<Duplex>;

  /** `connect` dials the upstream (through the upstream proxy when there is one). */
  constructor(connect: (address: string, port: number) => Promise<Duplex>) {
    this.connect = connect;
  }

  /** The agent for `address`:`port` (an address the policy has just allowed). */
  agent(address: string, port: number): http.Agent {
    const key = `${address} ${port}`;
    let agent = this.agents.get(key);
    if (!agent) {
      agent = new http.Agent({ keepAlive: true, maxFreeSockets: MAX_IDLE, timeout: IDLE_MS });
      const dial = this.connect;
      agent.createConnection = ((_: unknown, done: (err: Error | null, socket?: Duplex) => void) => {
        dial(address, port).then(
          (socket) => done(null, socket),
          (e: Error) => done(e),
        );
        return undefined;
      }) as unknown as http.Agent["createConnection"];
      this.agents.set(key, agent);
    }
    return agent;
  }

  /** Closes every connection and forgets the agents. */
  clear(): void {
    for (const agent of this.agents.values()) agent.destroy();
    this.agents.clear();
  }
}
