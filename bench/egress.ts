/**
 * Egress: `curl` inside a namespace-tier sandbox reaching a server on the
 * host's loopback through Kiln's egress path (the name `bench.test` given
 * through Kiln's resolver, allowed by the policy), beside the same `curl`
 * run on the host directly against the same server. A 50 MB download, 1,000
 * small requests on one kept-alive connection, and the time to the first
 * byte of a request on a new connection. Inside, curl goes the way it goes
 * by default (the proxy Kiln names in `HTTP_PROXY`, every request checked)
 * and with `--noproxy '*'` (the sandbox's own connection, taken by Kiln's
 * listener for the port rule and checked once).
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { Kiln, type Sandbox } from "../src/index.ts";
import { quantile, type Row } from "./stats.ts";

const MB50 = 50 * 1024 * 1024;
const NAME = "bench.test";
const p50 = (xs: number[]) => quantile(xs, 0.5);
const run = promisify(execFile);

/** The upstream: a Node HTTP server in its own process (so it does not share the egress path's thread). */
const SERVER = `
const big = Buffer.alloc(${MB50}, 7);
const s = require("node:http").createServer((req, res) => {
  if (req.url === "/big") { res.writeHead(200, { "content-length": big.length }); return res.end(big); }
  res.end("hello\\n");
});
s.listen(0, "127.0.0.1", () => process.stdout.write(s.address().port + "\\n"));
`;

/** A bare TCP relay in Node (no policy, no sandbox), to the port in argv: the floor of any relay written in Node. */
const RELAY = `
const net = require("node:net");
const to = Number(process.argv[1]);
const s = net.createServer((c) => { const u = net.connect(to, "127.0.0.1"); c.pipe(u).pipe(c); c.on("error", () => u.destroy()); u.on("error", () => c.destroy()); });
s.listen(0, "127.0.0.1", () => process.stdout.write(s.address().port + "\\n"));
`;

async function startUpstream(
  script = SERVER,
  ...args: string[]
): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, ["-e", script, ...args], { stdio: ["ignore", "pipe", "inherit"] });
  const port = await new Promise<number>((resolve, reject) => {
    child.once("error", reject);
    child.stdout!.once("data", (d: Buffer) => resolve(Number(d.toString().trim())));
  });
  return { child, port };
}

/** Runs `script` with bash on the host, without proxy variables. */
async function onHost(script: string): Promise<string> {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/_proxy$/i.test(k)));
  return (await run("bash", ["-c", script], { env, maxBuffer: 1 << 20 })).stdout;
}

async function inSandbox(sb: Sandbox, script: string): Promise<string> {
  const r = await sb.commands.run(script, { timeoutMs: 300_000 });
  if (!("exitCode" in r) || r.exitCode !== 0) throw new Error(`bench command failed: ${JSON.stringify(r)}`);
  return r.stdout;
}

const seconds = (out: string) =>
  out
    .trim()
    .split(/\s+/)
    .map((s) => Number(s) * 1000);

/** The rows: each measurement alternates sandbox and host runs, so that both see the same machine. */
export async function benchEgress(): Promise<Row[] | undefined> {
  const dataDir = mkdtempSync(join(tmpdir(), "kiln-bench-egress-"));
  const upstream = await startUpstream();
  const port = upstream.port;
  const relay = await startUpstream(RELAY, String(port));
  const kiln = await Kiln.open({ dataDir, networkHosts: { [NAME]: ["127.0.0.1"] } });
  try {
    const status = await (await kiln.backend("namespace")).probe();
    if (!status.available) {
      process.stderr.write(`bench: egress skipped: namespace tier unavailable (${status.reason})\n`);
      return undefined;
    }
    // A loopback upstream is in a blocked range: the address rule names it.
    const sb = await kiln.create({
      tier: "namespace",
      network: { allow: [`${NAME}:${port}`, `127.0.0.1:${port}`] },
    });
    const url = (path: string) => `http://${NAME}:${port}${path}`;
    const resolve = `--resolve ${NAME}:${port}:127.0.0.1`;
    try {
      const download = (flags: string) => `curl -sS -o /dev/null -w '%{time_total}' ${flags} ${url("/big")}`;
      const many = (flags: string) =>
        `s=$(date +%s%N); curl -sS -o /dev/null ${flags} '${url("/small?i=[1-1000]")}'; e=$(date +%s%N); echo "$(( (e - s) / 1000 ))e-3"`;
      const firstByte = (flags: string) =>
        `for i in $(seq 20); do curl -sS -o /dev/null -w '%{time_starttransfer}\\n' ${flags} ${url("/small")}; done`;
      await inSandbox(sb, download(""));
      await onHost(download(resolve));
      const k = {
        proxy: [] as number[],
        direct: [] as number[],
        many: [] as number[],
        manyDirect: [] as number[],
      };
      const h = { big: [] as number[], many: [] as number[], relay: [] as number[] };
      const kFirst: number[] = [];
      const kFirstDirect: number[] = [];
      const hFirst: number[] = [];
      for (let i = 0; i < 5; i++) {
        k.proxy.push(...seconds(await inSandbox(sb, download(""))));
        h.big.push(...seconds(await onHost(download(resolve))));
        k.direct.push(...seconds(await inSandbox(sb, download("--noproxy '*'"))));
        h.relay.push(
          ...seconds(
            await onHost(
              download(`--resolve ${NAME}:${port}:127.0.0.1 --connect-to ::127.0.0.1:${relay.port}`),
            ),
          ),
        );
      }
      for (let i = 0; i < 3; i++) {
        k.many.push(Number(await inSandbox(sb, many(""))));
        h.many.push(Number(await onHost(many(resolve))));
        k.manyDirect.push(Number(await inSandbox(sb, many("--noproxy '*'"))));
        kFirst.push(...seconds(await inSandbox(sb, firstByte(""))));
        hFirst.push(...seconds(await onHost(firstByte(resolve))));
        kFirstDirect.push(...seconds(await inSandbox(sb, firstByte("--noproxy '*'"))));
      }
      await sb.kill();
      const raw = "the same curl on the host, direct";
      const rate = (ms: number) => (((MB50 / ms) * 1000) / 2 ** 20).toFixed(0);
      return [
        {
          metric: "50 MB download, through Kiln's HTTP proxy (curl's default inside), p50 of 5",
          kiln: p50(k.proxy),
          raw: p50(h.big),
          unit: "ms",
          rawLabel: raw,
          note: `${rate(p50(k.proxy))} vs ${rate(p50(h.big))} MiB/s; target 1.3x`,
        },
        {
          metric: "50 MB download, `--noproxy '*'` (the port rule's listener), p50 of 5",
          kiln: p50(k.direct),
          raw: p50(h.big),
          unit: "ms",
          rawLabel: raw,
          note: `${rate(p50(k.direct))} MiB/s; target 1.3x`,
        },
        {
          metric:
            "50 MB download on the host through a bare Node TCP relay (no policy, no sandbox), p50 of 5",
          kiln: p50(h.relay),
          raw: p50(h.big),
          unit: "ms",
          rawLabel: raw,
          note: "the floor of any relay in Node on this machine",
        },
        {
          metric: "1,000 small requests, one kept-alive connection, through the proxy, p50 of 3",
          kiln: p50(k.many),
          raw: p50(h.many),
          unit: "ms",
          rawLabel: raw,
        },
        {
          metric: "1,000 small requests, one kept-alive connection, `--noproxy '*'`, p50 of 3",
          kiln: p50(k.manyDirect),
          raw: p50(h.many),
          unit: "ms",
          rawLabel: raw,
        },
        {
          metric: "new connection to first byte (curl's time_starttransfer), through the proxy, p50 of 60",
          kiln: p50(kFirst),
          raw: p50(hFirst),
          unit: "ms",
          rawLabel: raw,
        },
        {
          metric: "new connection to first byte, `--noproxy '*'`, p50 of 60",
          kiln: p50(kFirstDirect),
          raw: p50(hFirst),
          unit: "ms",
          rawLabel: raw,
        },
      ];
    } finally {
      await sb.kill().catch(() => {});
    }
  } finally {
    await kiln.close();
    upstream.child.kill();
    relay.child.kill();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

if (import.meta.main) {
  const { markdownTable } = await import("./stats.ts");
  const rows = await benchEgress();
  if (rows)
    process.stdout.write(`${markdownTable("egress: namespace tier, curl to a loopback server", rows)}\n`);
}
