/**
 * Plugs a real-tier sandbox's network namespace into Kiln's egress path.
 *
 * The sandbox's own namespace (S, made by its runtime) gets one link, a veth
 * whose other end lives in a second, private namespace (M) made for it here;
 * neither end is ever in the host's namespace, so no host service is in
 * reach and nothing is left on the host when Kiln dies (M lives only as long
 * as the sockets Kiln holds in it; S and its veth go with the sandbox).
 *
 *     sandbox (S)                                 M (private)                  host
 *     eth0 198.18.0.2 --- veth --- 198.18.0.1, every 198.18.0.0/15 address local
 *     route 198.18.0.0/15 only      listeners (fds held by Kiln) ----> Egress ----> out
 *     no default route, no IPv6     :53 udp+tcp DNS, :80 HTTP, :443 TLS,
 *     resolv.conf -> 198.18.0.1     :3128 proxy, :<port> of port rules
 *
 * A VM (the microvm tier) is the sandbox behind S: S is its QEMU's namespace,
 * where eth0 and the tap of the guest's card are bridged and S holds no
 * address; the guest holds 198.18.0.2 and sets its own route and resolv.conf.
 *
 * Kiln's DNS answers an allowed name with an address of 198.18.0.0/15 that
 * stands for it; a connection to it lands on M's listener for that port, whose
 * local address names the destination (no NAT, no netfilter). Everything else
 * fails at once: an IP literal or IPv6 has no route (ENETUNREACH), a port
 * nobody listens on is refused, UDP other than DNS gets port-unreachable.
 *
 * M's listening sockets are made by a short-lived Node process started in M
 * (`unshare --net`) that hands them to this process over its IPC channel and
 * exits; links and addresses are set with `ip` through `nsenter`.
 */
import { spawn } from "node:child_process";
import type dgram from "node:dgram";
import { closeSync, lstatSync, openSync, readFileSync, readlinkSync, writeFileSync } from "node:fs";
import type { Server, Socket } from "node:net";
import { join } from "node:path";
import tls from "node:tls";
import { AuditLog } from "../../core/audit-log.ts";
import type { InstanceSpec } from "../../core/backend.ts";
import { TierUnavailableError } from "../../core/errors.ts";
import type { TierName } from "../../core/types.ts";
import { limitAuditRate } from "../../network/audit-limit.ts";
import { SandboxCa } from "../../network/ca.ts";
import { answerDns } from "../../network/dns.ts";
import { Egress } from "../../network/egress.ts";
import { hasEgress, NetworkPolicy, type NetworkSettings, upstreamProxyFor } from "../../network/policy.ts";
import { parseHostMap, Resolver } from "../../network/resolver.ts";
import { parseRule } from "../../network/rules.ts";
import { readHeaderRules, type Secret, secretsOf } from "../../network/secrets.ts";

/** The gateway address the sandbox sees: DNS, the proxy, and the way to every name. */
export const GATEWAY = "198.18.0.1";
/** The sandbox's own address. */
export const SANDBOX_ADDRESS = "198.18.0.2";
/**
 * The gateway's link address when a VM's card is behind the link: the same for every VM and every
 * attach (each M is private), so that a guest restored with its ARP cache still finds its gateway.
 */
const GATEWAY_MAC = "02:4b:49:4c:4e:01";

/** Port of the HTTP proxy on the gateway. */
export const PROXY_PORT = 3128;
/** The contents of the sandbox's /etc/resolv.conf. */
export const RESOLV_CONF = `nameserver ${GATEWAY}\noptions ndots:0 attempts:1 timeout:2\n`;

/** Environment variables that point proxy-aware programs at the egress path. */
export const PROXY_ENV: Readonly<Record<string, string>> = Object.freeze({
  HTTP_PROXY: `http://${GATEWAY}:${PROXY_PORT}`,
  HTTPS_PROXY: `http://${GATEWAY}:${PROXY_PORT}`,
  http_proxy: `http://${GATEWAY}:${PROXY_PORT}`,
  https_proxy: `http://${GATEWAY}:${PROXY_PORT}`,
  NO_PROXY: "localhost,127.0.0.1,::1",
  no_proxy: "localhost,127.0.0.1,::1",
});

const FIRST_NAME_ADDRESS = (198 << 24) | (18 << 16) | 256; // 198.18.1.0
const NAME_ADDRESSES = 2 * 65536 - 512;

/** The code of the helper that runs in M: listens, hands its sockets over, exits. */
const HELPER = `
const net = require("node:net"), dgram = require("node:dgram");
const ports = JSON.parse(process.argv[1]), dns = process.argv[2] === "dns";
process.on("message", async (m) => {
  if (m !== "listen") { process.exit(0); return; }
  try {
    for (const port of ports) {
      const s = net.createServer();
      await new Promise((ok, ko) => { s.once("error", ko); s.listen({ port, host: "0.0.0.0", backlog: 511 }, ok); });
      await new Promise((ok) => process.send({ kind: "tcp", port }, s, ok));
    }
    if (dns) {
      const u = dgram.createSocket("udp4");
      await new Promise((ok, ko) => { u.once("error", ko); u.bind(53, "0.0.0.0", ok); });
      await new Promise((ok) => process.send({ kind: "udp", port: 53 }, u, ok));
    }
    process.send({ kind: "done" });
  } catch (e) { process.send({ kind: "error", message: String(e) }); }
});
process.send({ kind: "ready" });
`;

/** A sandbox's live network: close it when the instance closes. */
export interface EgressAttachment {
  /** Variables to add to every command's environment (the proxy; each secret's placeholder and the CA files). */
  readonly env: Readonly<Record<string, string>>;
  /** Files the sandbox needs at these paths (the CA it trusts), written by the tier after attach and update. */
  readonly files: readonly { path: string; content: string }[];
  /**
   * Replaces the policy for every new connection, request and DNS question
   * (connections already let through stay), listening on ports the new rules
   * name. @throws TierUnavailableError when a new port cannot be listened on
   */
  update(settings: NetworkSettings): Promise<void>;
  /** Closes every listener and connection (the private namespace then goes). */
  close(): void;
}

/** The names resolved without DNS: Kiln's `networkHosts` option, else `KILN_NETWORK_HOSTS`. */
function hostMap(spec: InstanceSpec) {
  return parseHostMap(spec.networkHosts ?? process.env.KILN_NETWORK_HOSTS);
}

/** Ports to listen on in M: DNS, HTTP, TLS, the proxy, and every port an allow rule names. */
function listenPorts(policy: NetworkPolicy): number[] {
  const ports = new Set([53, 80, 443, PROXY_PORT]);
  for (const r of policy.settings.allow) {
    const port = parseRule(r).port;
    if (port !== undefined) ports.add(port);
  }
  return [...ports];
}

/** How the sandbox's namespace S holds its end of the link. */
export interface AttachOptions {
  /** The whole range on-link, for a user-space netstack (gVisor); default false. */
  subnet?: boolean;
  /**
   * A tap device in S whose far side is a VM's network card (the microvm tier): S's end of the link
   * and the tap are bridged, with no address in S, so that the guest itself holds the sandbox's
   * address and is one hop from M; default none.
   */
  tap?: string;
}

/**
 * Gives the sandbox whose network namespace is that of process `sandboxPid`
 * its egress path, if its policy has any egress (else undefined: it keeps no
 * network at all).
 * @throws TierUnavailableError when the namespace cannot be wired (no `ip`, not root)
 */
export async function attachEgress(
  tier: TierName,
  spec: InstanceSpec,
  sandboxPid: number,
  options: AttachOptions = {},
): Promise<EgressAttachment | undefined> {
  if (!spec.network || !hasEgress(spec.network)) return undefined;
  let policy = new NetworkPolicy(spec.network);
  const log = new AuditLog(spec.databasePath);
  // Every entry of this sandbox (egress, DNS) goes through one rate cap.
  const audit = limitAuditRate((e) => log.network(e), spec.networkLimits?.maxAuditEntriesPerSecond);
  const egress = new Egress({
    policy,
    resolver: new Resolver(hostMap(spec)),
    audit: (e) => audit.record(e),
    ...(spec.networkLimits?.maxConnections ? { maxConnections: spec.networkLimits.maxConnections } : {}),
    ...(spec.networkLimits?.maxBytesPerSecond
      ? { maxBytesPerSecond: spec.networkLimits.maxBytesPerSecond }
      : {}),
  });
  let secrets: Secret[] = [];
  let intercepting = false;
  let ca: SandboxCa | undefined;
  const setSecrets = (settings: NetworkSettings) => {
    secrets = secretsOf(settings, spec.stateDir);
    const headerRules = settings.headers ? readHeaderRules(spec.stateDir) : [];
    egress.headerRules = headerRules;
    intercepting = secrets.length > 0 || headerRules.length > 0;
    if (intercepting && !ca) {
      ca = SandboxCa.open(join(spec.stateDir, "ca"));
      egress.ca = ca;
    }
    egress.secrets = secrets;
    egress.upstreamProxy = upstreamProxyFor(settings, spec.stateDir, spec.upstreamProxy);
  };
  setSecrets(spec.network);
  const servers: Server[] = [];
  const listening = new Set<number>();
  let udp: dgram.Socket | undefined;
  // M, held open so that later policies can listen on more ports in it.
  let netnsFd: number | undefined;
  const names = new Map<string, string>();
  const byAddress = new Map<string, string>();
  const addressFor = (name: string): string => {
    let a = names.get(name);
    if (a) return a;
    const n = FIRST_NAME_ADDRESS + (names.size % NAME_ADDRESSES);
    a = `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
    const old = byAddress.get(a);
    if (old) names.delete(old);
    names.set(name, a);
    byAddress.set(a, name);
    return a;
  };
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    egress.close();
    for (const s of servers) s.close();
    udp?.close();
    audit.close();
    log.close();
    if (netnsFd !== undefined) closeSync(netnsFd);
    netnsFd = undefined;
  };

  /** Starts the helper (`prefix` puts it in M), takes the sockets it listens on, lets it go. */
  const listen = async (
    prefix: string[],
    ports: number[],
    dns: boolean,
    ready: (pid: number) => Promise<void>,
  ) => {
    const helper = spawn(
      prefix[0]!,
      [...prefix.slice(1), process.execPath, "-e", HELPER, JSON.stringify(ports), dns ? "dns" : ""],
      {
        stdio: ["ignore", "ignore", "pipe", "ipc"],
      },
    );
    let stderr = "";
    helper.stderr?.on("data", (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-2000);
    });
    try {
      const done = new Promise<void>((resolve, reject) => {
        helper.on("message", (m: { kind: string; port?: number; message?: string }, handle: unknown) => {
          if (m.kind === "ready") {
            ready(helper.pid!).then(
              () => helper.send("listen"),
              (e) => reject(e),
            );
          } else if (m.kind === "tcp") {
            const server = handle as Server;
            if (closed) return server.close();
            servers.push(server);
            listening.add(m.port!);
            server.on("connection", (socket: Socket) => route(socket));
          } else if (m.kind === "udp") {
            udp = handle as dgram.Socket;
            udp.on("message", (msg, from) => {
              const reply = answerDns(msg, { policy, addressFor, audit: (e) => audit.record(e) });
              if (reply) udp!.send(reply, from.port, from.address);
            });
            udp.on("error", () => {});
          } else if (m.kind === "done") resolve();
          else reject(new Error(m.message ?? "helper failed"));
        });
        helper.once("exit", (code) => reject(new Error(`network helper exited (${code}): ${stderr.trim()}`)));
      });
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        done,
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error("network setup timed out")), 60_000);
        }),
      ]).finally(() => clearTimeout(timer));
    } catch (e) {
      helper.kill("SIGKILL");
      throw e;
    }
    helper.send("exit");
  };

  try {
    await listen(["unshare", "--net", "--"], listenPorts(policy), true, async (helperPid) => {
      netnsFd = openSync(`/proc/${helperPid}/ns/net`, "r");
      await wire(helperPid, sandboxPid, options);
    });
  } catch (e) {
    close();
    throw new TierUnavailableError(tier, `cannot give the sandbox its network: ${(e as Error).message}`, {
      cause: e,
    });
  }

  const update = async (settings: NetworkSettings) => {
    const next = new NetworkPolicy(settings);
    const more = listenPorts(next).filter((p) => !listening.has(p));
    if (more.length > 0 && !closed) {
      try {
        await listen(
          ["nsenter", `--net=/proc/${process.pid}/fd/${netnsFd}`, "--"],
          more,
          false,
          async () => {},
        );
      } catch (e) {
        throw new TierUnavailableError(
          tier,
          `cannot listen on ports ${more.join(", ")}: ${(e as Error).message}`,
          {
            cause: e,
          },
        );
      }
    }
    policy = next;
    egress.policy = next;
    setSecrets(settings);
  };

  function route(socket: Socket): void {
    const port = socket.localPort ?? 0;
    const local = socket.localAddress ?? "";
    const name = byAddress.get(local);
    if (port === PROXY_PORT && local === GATEWAY) egress.proxy(socket);
    else if (port === 53) dnsOverTcp(socket);
    else if (port === 80) egress.http(socket, { port });
    else if (port === 443) egress.tls(socket, { port });
    else egress.tcp(socket, name ? { name, port } : { port });
  }

  function dnsOverTcp(socket: Socket): void {
    socket.on("error", () => {});
    socket.setTimeout(10_000, () => socket.destroy());
    let buf = Buffer.alloc(0);
    socket.on("data", (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      if (buf.length > 70_000) return socket.destroy();
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const msg = buf.subarray(2, 2 + buf.readUInt16BE(0));
        buf = buf.subarray(2 + msg.length);
        const reply = answerDns(msg, { policy, addressFor, audit: (e) => audit.record(e) });
        if (!reply) return socket.destroy();
        const len = Buffer.alloc(2);
        len.writeUInt16BE(reply.length);
        socket.write(Buffer.concat([len, reply]));
      }
    });
  }

  return {
    get env() {
      return secretEnv(secrets, intercepting ? ca : undefined);
    },
    get files() {
      return ca && intercepting ? caFiles(ca) : [];
    },
    update,
    close,
  };
}

/** Where the sandbox finds the CA of its intercepted TLS: the CA alone, and the system's roots with it. */
export const CA_FILE = "/tmp/.kiln/ca.pem";
export const CA_BUNDLE_FILE = "/tmp/.kiln/ca-bundle.pem";

function caFiles(ca: SandboxCa): { path: string; content: string }[] {
  return [
    { path: CA_FILE, content: ca.certPem },
    { path: CA_BUNDLE_FILE, content: `${tls.rootCertificates.join("\n")}\n${ca.certPem}` },
  ];
}

/** The proxy variables, and with secrets each placeholder and the variables that make programs trust the CA. */
function secretEnv(secrets: Secret[], ca: SandboxCa | undefined): Record<string, string> {
  if (!ca) return { ...PROXY_ENV };
  return {
    ...PROXY_ENV,
    ...Object.fromEntries(secrets.map((s) => [s.name, s.placeholder])),
    NODE_EXTRA_CA_CERTS: CA_FILE,
    SSL_CERT_FILE: CA_BUNDLE_FILE,
    REQUESTS_CA_BUNDLE: CA_BUNDLE_FILE,
    CURL_CA_BUNDLE: CA_BUNDLE_FILE,
  };
}

/** Runs `script` with sh in the network namespace of process `pid`. */
function shIn(pid: number, script: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn("nsenter", [`--net=/proc/${pid}/ns/net`, "--", "sh", "-e"], {
      stdio: ["pipe", "ignore", "pipe"],
    });
    let err = "";
    child.stderr.on("data", (d: Buffer) => {
      err += d.toString();
    });
    child.on("error", reject);
    child.on("close", (code) =>
      code === 0 ? resolve() : reject(new Error(`network setup failed: ${err.trim()}`)),
    );
    child.stdin.end(script);
  });
}

/** Links M (the helper's namespace) and S (the sandbox's) and sets their addresses and routes. */
async function wire(helperPid: number, sandboxPid: number, options: AttachOptions): Promise<void> {
  // M is private to this sandbox: the link's name cannot clash with anything.
  const noV6 =
    "echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6\necho 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6\n";
  await shIn(
    helperPid,
    `${noV6}ip link set lo up
ip link add gw0 ${options.tap !== undefined ? `address ${GATEWAY_MAC} ` : ""}type veth peer name eth0 netns ${sandboxPid}
ip addr add ${GATEWAY} peer ${SANDBOX_ADDRESS} dev gw0
ip link set gw0 up
ip route add local 198.18.0.0/15 dev lo
`,
  );
  await shIn(sandboxPid, `${noV6}${sandboxSide(options)}`);
}

/** The commands that set up S's end of the link. */
function sandboxSide(options: AttachOptions): string {
  if (options.tap !== undefined) {
    if (!/^[a-z][a-z0-9]{0,14}$/.test(options.tap)) throw new Error(`not a tap device name: ${options.tap}`);
    // The guest answers ARP for the sandbox's address itself; S only carries frames.
    return `ip link add br0 type bridge
ip link set eth0 master br0
ip link set ${options.tap} master br0
ip link set eth0 up
ip link set ${options.tap} up
ip link set br0 up
`;
  }
  // A user-space netstack (gVisor) copies plain addresses and routes, not point-to-point peers:
  // the whole range is on the link, and M answers ARP for every address of it.
  if (options.subnet)
    return `ip addr add ${SANDBOX_ADDRESS}/15 dev eth0
ip link set eth0 up
`;
  return `ip addr add ${SANDBOX_ADDRESS} peer ${GATEWAY} dev eth0
ip link set eth0 up
ip route add 198.18.0.0/15 via ${GATEWAY} dev eth0
`;
}

/**
 * The resolv.conf file to bind at the sandbox's /etc/resolv.conf (written in
 * its state directory), pointing at Kiln's DNS on the gateway, when its root
 * filesystem has a plain file there to bind over; else undefined. A sandbox
 * without egress gets it too (the gateway is unreachable until a policy with
 * egress wires it), so that a policy given while it runs resolves names.
 */
export function sandboxResolvConf(spec: InstanceSpec, rootfs: string): string | undefined {
  try {
    if (!lstatSync(join(rootfs, "etc", "resolv.conf")).isFile()) return undefined;
  } catch {
    return undefined;
  }
  const path = join(spec.stateDir, "resolv.conf");
  writeFileSync(path, RESOLV_CONF);
  return path;
}

/** The process among `pid`'s children that is in another network namespace (the sandbox's first process). */
export function childInOtherNetns(pid: number): number | undefined {
  let children: number[];
  try {
    children = readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8")
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  } catch {
    return undefined;
  }
  const mine = netnsOf(process.pid);
  for (const c of children) {
    const n = netnsOf(c);
    if (n && n !== mine) return c;
  }
  return undefined;
}

function netnsOf(pid: number): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/ns/net`);
  } catch {
    return undefined;
  }
}
