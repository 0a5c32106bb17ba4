/**
 * Inbound ports: a server inside a sandbox reached through Kiln (the agent's
 * `connect` op: `sandbox.ports`, and `kiln serve`'s host router) beside the
 * same server (`python3 -m http.server`) run on the host and reached directly
 * on loopback. Per real tier: connection set-up, 200 small requests one after
 * the other, and a 50 MB download.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TierName } from "../src/index.ts";
import { startServer } from "../src/server/index.ts";
import { step } from "./progress.ts";
import { quantile, type Row, timeInterleaved } from "./stats.ts";

const MB50 = 50 * 1024 * 1024;
const p50 = (xs: number[]) => quantile(xs, 0.5);

/** GETs `url` and resolves with the byte count (the name resolves to loopback). */
function get(url: string, headers: Record<string, string> = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        headers,
        agent: false,
        lookup: ((_h: string, o: { all?: boolean }, cb: (...a: unknown[]) => void) =>
          o?.all ? cb(null, [{ address: "127.0.0.1", family: 4 }]) : cb(null, "127.0.0.1", 4)) as never,
      },
      (res) => {
        let n = 0;
        res.on("data", (d: Buffer) => {
          n += d.length;
        });
        res.on("end", () =>
          res.statusCode === 200 ? resolve(n) : reject(new Error(`status ${res.statusCode}`)),
        );
      },
    );
    req.on("error", reject);
    req.end();
  });
}

function tcpConnect(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = connect(port, "127.0.0.1", () => {
      s.destroy();
      resolve();
    });
    s.on("error", reject);
  });
}

async function waitFor(fn: () => Promise<unknown>): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      await fn();
      return;
    } catch (e) {
      if (Date.now() > deadline) throw e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/** The table rows of every real tier that runs here. */
export async function benchPorts(): Promise<{ tier: TierName; rows: Row[] }[]> {
  const dataDir = mkdtempSync(join(tmpdir(), "kiln-bench-ports-"));
  const site = mkdtempSync(join(tmpdir(), "kiln-bench-site-"));
  writeFileSync(join(site, "big"), Buffer.alloc(MB50, 7));
  writeFileSync(join(site, "small"), "hello\n");
  // The raw side: the same server on the host, reached directly.
  const hostPort = 18000 + Math.floor(Math.random() * 2000);
  const raw: ChildProcess = spawn("python3", ["-m", "http.server", String(hostPort), "--bind", "127.0.0.1"], {
    cwd: site,
    stdio: "ignore",
  });
  const server = await startServer({ dataDir, port: 0, domain: "kiln.bench" });
  const key = server.keys.create({ name: "bench" }).key;
  const out: { tier: TierName; rows: Row[] }[] = [];
  try {
    await waitFor(() => get(`http://127.0.0.1:${hostPort}/small`));
    const only = process.env.KILN_BENCH_TIERS?.split(",");
    for (const status of await server.kiln.doctor()) {
      const tier = status.tier;
      if (!status.available || (only && !only.includes(tier))) continue;
      if (!(await server.kiln.backend(tier)).capabilities.inboundPorts) continue;
      step(`${tier} tier`);
      const res = await fetch(`${server.url}/v1/sandboxes`, {
        method: "POST",
        headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
        body: JSON.stringify({ tier, ports: { public: [8000] } }),
      });
      const { id } = (await res.json()) as { id: string };
      const sb = await server.kiln.connect(id);
      await sb.commands.run(
        "mkdir -p /tmp/site && head -c 52428800 /dev/zero > /tmp/site/big && echo hello > /tmp/site/small",
      );
      await sb.commands.run("cd /tmp/site && exec python3 -m http.server 8000", { background: true });
      const fwd = await sb.ports.forward(8000);
      await waitFor(() => get(`http://${fwd.address}/small`));
      const viaServer = (path: string) => get(`http://8000-${id}.kiln.bench:${server.port}${path}`);
      const [kConnect, rConnect] = await timeInterleaved(
        100,
        async () => (await sb.ports.connect(8000)).destroy(),
        () => tcpConnect(hostPort),
      );
      const [kSmall, rSmall] = await timeInterleaved(
        200,
        () => get(`http://${fwd.address}/small`),
        () => get(`http://127.0.0.1:${hostPort}/small`),
      );
      const [sSmall] = await timeInterleaved(
        200,
        () => viaServer("/small"),
        async () => {},
        3,
      );
      const [kBig, rBig] = await timeInterleaved(
        5,
        () => get(`http://${fwd.address}/big`),
        () => get(`http://127.0.0.1:${hostPort}/big`),
        1,
      );
      const [sBig] = await timeInterleaved(
        5,
        () => viaServer("/big"),
        async () => {},
        1,
      );
      const rawSmall = "the same server on the host, direct";
      out.push({
        tier,
        rows: [
          {
            metric: "connection set-up (`sandbox.ports.connect`), p50",
            kiln: p50(kConnect),
            raw: p50(rConnect),
            unit: "ms",
            rawLabel: "TCP connect on loopback",
          },
          {
            metric: "small HTTP request (forward), p50 of 200",
            kiln: p50(kSmall),
            raw: p50(rSmall),
            unit: "ms",
            rawLabel: rawSmall,
          },
          {
            metric: "small HTTP request (`kiln serve`, Host form), p50 of 200",
            kiln: p50(sSmall),
            raw: p50(rSmall),
            unit: "ms",
            rawLabel: rawSmall,
          },
          {
            metric: "50 MB download (forward), p50 of 5",
            kiln: p50(kBig),
            raw: p50(rBig),
            unit: "ms",
            rawLabel: rawSmall,
            note: `${(((MB50 / p50(kBig)) * 1000) / 2 ** 20).toFixed(0)} MiB/s`,
          },
          {
            metric: "50 MB download (`kiln serve`, Host form), p50 of 5",
            kiln: p50(sBig),
            raw: p50(rBig),
            unit: "ms",
            rawLabel: rawSmall,
            note: `${(((MB50 / p50(sBig)) * 1000) / 2 ** 20).toFixed(0)} MiB/s`,
          },
        ],
      });
      await fwd.close();
      await sb.kill();
    }
  } finally {
    raw.kill();
    await server.close(1000);
    rmSync(dataDir, { recursive: true, force: true });
    rmSync(site, { recursive: true, force: true });
  }
  return out;
}

if (import.meta.main) {
  const { markdownTable } = await import("./stats.ts");
  for (const { tier, rows } of await benchPorts()) {
    process.stdout.write(`${markdownTable(`inbound ports: ${tier} tier`, rows)}\n\n`);
  }
}
