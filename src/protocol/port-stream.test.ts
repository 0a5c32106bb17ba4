/**
 * The agent's `connect` op, run on the host (no sandbox): the real kiln-agent
 * binary connects to a real TCP server on this machine's loopback, and the
 * bytes go through AgentClient.connectPort's Duplex.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { once } from "node:events";
import { createServer, type Server, type Socket } from "node:net";
import { dirname, join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { AgentClient, AgentError } from "./agent-client.ts";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const binary = join(root, "agent", "target", "kiln-agent");
const build = spawnSync("bash", [join(root, "scripts", "build-agent.sh")], { encoding: "utf8" });
const skip = build.status === 0 ? false : `cannot build the agent: ${build.stderr.trim().split("\n").pop()}`;
if (skip) console.log(`# skipping port stream tests: ${skip}`);

function listen(onSocket: (s: Socket) => void): Promise<{ server: Server; port: number }> {
  const server = createServer(onSocket);
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () =>
      resolve({ server, port: (server.address() as { port: number }).port }),
    ),
  );
}

async function collect(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of stream) parts.push(Buffer.from(c as Buffer));
  return Buffer.concat(parts);
}

describe("agent connect (port streams)", { skip }, () => {
  let client: AgentClient;
  let child: ReturnType<typeof spawn>;
  before(async () => {
    child = spawn(binary, [], { stdio: ["pipe", "pipe", "inherit"] });
    client = await AgentClient.connect(child.stdout!, child.stdin!, { timeoutMs: 30_000 });
  });
  after(async () => {
    await client.close();
  });

  test("echo with half-close: bytes both ways, END from each side", async () => {
    const { server, port } = await listen((s) => s.pipe(s));
    try {
      const conn = await client.connectPort(port);
      const got = collect(conn);
      conn.end("hello through the agent");
      assert.equal((await got).toString(), "hello through the agent");
    } finally {
      server.close();
    }
  });

  test("8 MiB each way with a slow reader: windows hold, nothing is lost or reordered", async () => {
    const payload = randomBytes(8 * 1024 * 1024);
    const want = createHash("sha256").update(payload).digest("hex");
    const { server, port } = await listen((s) => {
      // The server reads slowly: the host's writes must wait for the agent's credit.
      const h = createHash("sha256");
      s.on("data", (d) => {
        h.update(d);
        s.pause();
        setTimeout(() => s.resume(), 1);
      });
      s.on("end", () => {
        s.write(h.digest("hex"));
        s.end(payload);
      });
    });
    try {
      const conn = await client.connectPort(port);
      const got = collect(conn);
      conn.end(payload);
      const all = await got;
      assert.equal(all.subarray(0, 64).toString(), want);
      assert.equal(createHash("sha256").update(all.subarray(64)).digest("hex"), want);
    } finally {
      server.close();
    }
  });

  test("a port nothing listens on is ECONNREFUSED; the agent keeps serving", async () => {
    const { server, port } = await listen(() => {});
    await new Promise((r) => server.close(r));
    await assert.rejects(client.connectPort(port), (e: unknown) => {
      assert.ok(e instanceof AgentError);
      assert.equal(e.errno, "ECONNREFUSED");
      return true;
    });
    assert.equal(typeof (await client.ping()).version, "string");
  });

  test("destroying the stream closes the connection inside; the server sees the end", async () => {
    let closed!: () => void;
    const serverSawClose = new Promise<void>((r) => {
      closed = r;
    });
    const { server, port } = await listen((s) => {
      s.on("close", closed);
      s.on("error", () => {});
      s.write("hi");
    });
    try {
      const conn = await client.connectPort(port);
      const [first] = await once(conn, "data");
      assert.equal(String(first), "hi");
      conn.destroy();
      await serverSawClose;
    } finally {
      server.close();
    }
  });

  test("bad ports are EINVAL", async () => {
    for (const port of [0, 65536, 1.5]) {
      await assert.rejects(client.connectPort(port), (e: unknown) => (e as AgentError).errno === "EINVAL");
    }
  });
});
