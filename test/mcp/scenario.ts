/**
 * The tool scenario every MCP transport must pass: the same tests run over
 * stdio (a real `kiln mcp` child process) and over Streamable HTTP.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { KILN_MCP_TOOLS } from "../../src/mcp/server.ts";
import { call, exitCode, failsWith, ok, section, UNKNOWN_ID } from "./helpers.ts";

/** Registers the scenario's tests; `client()` returns a connected client (after `before`). */
export function toolScenario(client: () => Client): void {
  let id = "";

  test("lists every tool with an input schema", async () => {
    const { tools } = await client().listTools();
    assert.deepEqual(tools.map((t) => t.name).sort(), [...KILN_MCP_TOOLS].sort());
    const run = tools.find((t) => t.name === "run_command")!;
    assert.deepEqual(run.inputSchema.required?.sort(), ["command", "sandboxId"]);
  });

  test("sandbox_create returns an id that sandbox_list shows", async () => {
    const created = JSON.parse(await ok(client(), "sandbox_create", { metadata: { team: "a" } }));
    assert.match(created.id, /^sb_[a-z0-9]{20}$/);
    assert.equal(created.tier, "virtual");
    assert.deepEqual(created.metadata, { team: "a" });
    id = created.id;
    const list = JSON.parse(await ok(client(), "sandbox_list"));
    assert.ok(list.some((s: { id: string }) => s.id === id));
  });

  test("run_command returns exit code, stdout and stderr", async () => {
    const text = await ok(client(), "run_command", {
      sandboxId: id,
      command: "echo out; echo err >&2; cat; echo $GREETING; exit 3",
      stdin: "from stdin\n",
      env: { GREETING: "hello" },
    });
    assert.equal(exitCode(text), 3);
    assert.equal(section(text, "stdout"), "out\nfrom stdin\nhello");
    assert.equal(section(text, "stderr"), "err");
  });

  test("write_file, read_file (ranges, base64) and list_files", async () => {
    const written = JSON.parse(
      await ok(client(), "write_file", { sandboxId: id, path: "src/a.txt", content: "0123456789abcdef" }),
    );
    assert.deepEqual(written, { path: "/workspace/src/a.txt", bytes: 16 });
    assert.equal(
      await ok(client(), "read_file", { sandboxId: id, path: "/workspace/src/a.txt" }),
      "0123456789abcdef",
    );
    const part = await call(client(), "read_file", {
      sandboxId: id,
      path: "src/a.txt",
      offset: 4,
      length: 3,
    });
    assert.equal(part.texts[0], "456");
    assert.match(part.texts[1]!, /offset=7/);
    await ok(client(), "write_file", { sandboxId: id, path: "bin.dat", content: "AAH/", encoding: "base64" });
    const b64 = await call(client(), "read_file", { sandboxId: id, path: "bin.dat", encoding: "base64" });
    assert.equal(b64.texts[0], "AAH/");
    const listing = await ok(client(), "list_files", { sandboxId: id, depth: 2 });
    assert.match(listing, /^dir .*\/workspace\/src\/$/m);
    assert.match(listing, /^file +16 +\/workspace\/src\/a\.txt$/m);
    assert.match(listing, /^file +3 +\/workspace\/bin\.dat$/m);
    const cat = await ok(client(), "run_command", { sandboxId: id, command: "cat src/a.txt" });
    assert.equal(section(cat, "stdout"), "0123456789abcdef");
  });

  test("run_code keeps state between calls", async () => {
    await ok(client(), "run_code", { sandboxId: id, code: "import math\nx = 6 * 7" });
    const text = await ok(client(), "run_code", { sandboxId: id, code: "print(x, round(math.pi, 2))" });
    assert.match(text.split("\n")[0]!, /\bok \(/);
    assert.equal(section(text, "stdout"), "42 3.14");
  });

  test("run_code returns a cell's image as MCP image content", async () => {
    // A PNG made in the cell (this sandbox's Python has no matplotlib): shown through `_repr_png_`, as Jupyter does.
    const code = [
      "import struct, zlib",
      "def chunk(kind, data):",
      "    return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data))",
      "class Dot:",
      "    def _repr_png_(self):",
      "        rows = b''.join(b'\\x00' + b'\\xff\\x00\\x00' * 2 for _ in range(2))",
      "        return (b'\\x89PNG\\r\\n\\x1a\\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', 2, 2, 8, 2, 0, 0, 0))",
      "                + chunk(b'IDAT', zlib.compress(rows)) + chunk(b'IEND', b''))",
      "Dot()",
    ].join("\n");
    const r = await call(client(), "run_code", { sandboxId: id, code });
    assert.equal(r.isError, false, r.texts.join("\n"));
    assert.equal(r.images.length, 1, r.texts.join("\n"));
    assert.equal(r.images[0]!.mimeType, "image/png");
    const png = Buffer.from(r.images[0]!.data, "base64");
    assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    assert.equal(png.readUInt32BE(16), 2, "the image's width, from its IHDR");
  });

  test("long output keeps head and tail and says what was cut", async () => {
    const text = await ok(client(), "run_command", { sandboxId: id, command: "seq 1 20000" });
    const out = section(text, "stdout");
    assert.ok(out.startsWith("1\n2\n3\n"));
    assert.ok(out.endsWith("19999\n20000"));
    const m = /\[stdout: (\d+) of (\d+) bytes cut from the middle; .*read_file/.exec(out);
    assert.ok(m, out.slice(0, 200));
    assert.equal(Number(m[2]), 108894);
    assert.ok(Buffer.byteLength(out) < 16 * 1024 + 400);
    assert.match(text, /^truncated: stdout \d+ bytes/m);
  });

  test("errors are tool errors carrying the Kiln error code", async () => {
    await failsWith(client(), "run_command", { sandboxId: UNKNOWN_ID, command: "true" }, "not_found");
    await failsWith(client(), "read_file", { sandboxId: id, path: "missing.txt" }, "not_found");
    await failsWith(client(), "read_file", { sandboxId: id, path: "../../etc/passwd" }, "invalid_argument");
    await failsWith(client(), "sandbox_create", { metadata: { "kiln.owner": "x" } }, "invalid_argument");
    await failsWith(client(), "run_command", { sandboxId: id }, "invalid_argument");
    await failsWith(client(), "list_files", { sandboxId: id, depth: 0 }, "invalid_argument");
    await failsWith(client(), "no_such_tool", {}, "not_found");
    await failsWith(
      client(),
      "write_file",
      { sandboxId: id, path: "x", content: "!!", encoding: "base64" },
      "invalid_argument",
    );
    const t = await failsWith(
      client(),
      "run_command",
      { sandboxId: id, command: "echo early; sleep 5", timeoutMs: 200 },
      "timeout",
    );
    // The partial result follows the error line (the virtual tier does not stream, so no output here).
    assert.match(t.texts[1]!, /^exit_code: \d+/);
  });

  test("sandbox_snapshot, sandbox_create from it, sandbox_fork, sandbox_pause and sandbox_resume", async () => {
    await ok(client(), "write_file", { sandboxId: id, path: "state.txt", content: "saved" });
    const snap = JSON.parse(await ok(client(), "sandbox_snapshot", { sandboxId: id, name: "mcp" }));
    assert.match(snap.id, /^snap_[a-z0-9]{20}$/);
    assert.equal(snap.kind, "files");
    assert.deepEqual(snap.metadata, { team: "a" });
    const listed = JSON.parse(await ok(client(), "snapshot_list"));
    assert.ok(listed.some((s: { id: string }) => s.id === snap.id));
    const copy = JSON.parse(await ok(client(), "sandbox_create", { snapshot: snap.id }));
    assert.equal(await ok(client(), "read_file", { sandboxId: copy.id, path: "state.txt" }), "saved");
    const forks = JSON.parse(await ok(client(), "sandbox_fork", { sandboxId: id, count: 2 }));
    assert.equal(forks.length, 2);
    for (const f of forks) {
      assert.notEqual(f.id, id);
      assert.equal(await ok(client(), "read_file", { sandboxId: f.id, path: "state.txt" }), "saved");
    }
    const paused = JSON.parse(await ok(client(), "sandbox_pause", { sandboxId: id }));
    assert.equal(paused.state, "paused");
    // Any call resumes it.
    assert.equal(await ok(client(), "read_file", { sandboxId: id, path: "state.txt" }), "saved");
    const resumed = JSON.parse(await ok(client(), "sandbox_resume", { sandboxId: id }));
    assert.equal(resumed.state, "running");
    await failsWith(client(), "sandbox_create", { snapshot: "snap_00000000000000000000" }, "not_found");
    for (const s of [copy, ...forks]) await ok(client(), "sandbox_kill", { sandboxId: s.id });
  });

  test("network_update replaces the egress policy, network_get shows it and the change in the audit log", async () => {
    const empty = JSON.parse(await ok(client(), "network_get", { sandboxId: id }));
    assert.deepEqual(empty.policy, { egress: "none", allow: [], deny: [] });
    const policy = JSON.parse(
      await ok(client(), "network_update", {
        sandboxId: id,
        allow: ["Files.Test:443"],
        deny: ["10.0.0.0/8"],
      }),
    );
    assert.deepEqual(policy, { egress: "none", allow: ["files.test:443"], deny: ["10.0.0.0/8"] });
    const shown = JSON.parse(await ok(client(), "network_get", { sandboxId: id }));
    assert.deepEqual(shown.policy, policy);
    assert.ok(
      shown.log.some(
        (e: { kind: string; rule: string }) =>
          e.kind === "policy" && e.rule === "egress none; allow files.test:443; deny 10.0.0.0/8",
      ),
    );
    await failsWith(client(), "network_update", { sandboxId: id, allow: ["a..b"] }, "invalid_argument");
    assert.deepEqual(JSON.parse(await ok(client(), "network_get", { sandboxId: id })).policy, policy);
    await ok(client(), "network_update", { sandboxId: id });
    await failsWith(client(), "network_get", { sandboxId: UNKNOWN_ID }, "not_found");
  });

  test("network_update takes the whole policy REST takes: secrets, header rules, upstream proxy, limits", async () => {
    const policy = JSON.parse(
      await ok(client(), "network_update", {
        sandboxId: id,
        allow: ["198.51.100.7", "127.0.0.1:1"],
        secrets: { API_KEY: { value: "real-key-8d1f", hosts: ["api.test"], headers: ["Authorization"] } },
        headers: { "api.test": { "X-Team": "team-secret-77c2" } },
        upstreamProxy: { url: "http://127.0.0.1:1", username: "kiln", password: "proxy-pw-4b1e" },
        limits: { maxConnections: 8, maxBytesPerSecond: 1_000_000 },
      }),
    );
    assert.deepEqual(policy.allow, ["198.51.100.7", "127.0.0.1:1"]);
    assert.deepEqual(policy.secrets.API_KEY.hosts, ["api.test"]);
    assert.deepEqual(policy.secrets.API_KEY.headers, ["authorization"]);
    assert.match(policy.secrets.API_KEY.placeholder, /^KILN_SECRET_API_KEY_[0-9a-f]{32}$/);
    assert.deepEqual(policy.headers, { "api.test": ["x-team"] });
    assert.deepEqual(policy.upstreamProxy, { url: "http://127.0.0.1:1", username: "kiln" });
    assert.deepEqual(policy.limits, { maxConnections: 8, maxBytesPerSecond: 1_000_000 });
    const shown = JSON.stringify(JSON.parse(await ok(client(), "network_get", { sandboxId: id })));
    for (const value of ["real-key-8d1f", "team-secret-77c2", "proxy-pw-4b1e"])
      assert.ok(!shown.includes(value));
    // The sandbox holds the placeholder, and its egress leaves only through the (dead) proxy: failing closed.
    const run = await ok(client(), "run_command", {
      sandboxId: id,
      command: "echo $API_KEY; curl -s -m 10 http://198.51.100.7/",
    });
    assert.equal(section(run, "stdout").split("\n")[0], policy.secrets.API_KEY.placeholder);
    assert.notEqual(exitCode(run), 0);
    const log = JSON.parse(await ok(client(), "network_get", { sandboxId: id, limit: 20 })).log as {
      address?: string;
      allowed?: boolean;
      rule: string;
    }[];
    assert.ok(
      log.some(
        (e) =>
          e.address === "198.51.100.7" && e.allowed === false && /upstream proxy unreachable/.test(e.rule),
      ),
      JSON.stringify(log),
    );
    // The same validation as REST, with the same typed error, and nothing changes.
    for (const bad of [
      { upstreamProxy: "ftp://127.0.0.1:21" },
      { upstreamProxy: { url: "http://127.0.0.1:1", token: "x" } },
      { limits: { maxConnections: 0 } },
      { limits: { maxConnections: 1.5 } },
      { limits: { burst: 1 } },
      { secrets: { API_KEY: { value: "v" } } },
      { secrets: { "bad name": { value: "v", hosts: ["api.test"] } } },
      { secrets: { API_KEY: { value: "v", hosts: ["a..b"] } } },
      { headers: { "api.test": { "bad header": "v" } } },
      { headers: { "api.test": "v" } },
      { bogus: true },
    ])
      await failsWith(client(), "network_update", { sandboxId: id, ...bad }, "invalid_argument");
    assert.deepEqual(JSON.parse(await ok(client(), "network_get", { sandboxId: id })).policy, policy);
    await ok(client(), "network_update", { sandboxId: id });
  });

  test("sandbox_kill removes the sandbox", async () => {
    await ok(client(), "sandbox_kill", { sandboxId: id });
    const list = JSON.parse(await ok(client(), "sandbox_list"));
    assert.ok(!list.some((s: { id: string }) => s.id === id));
    await failsWith(client(), "run_command", { sandboxId: id, command: "true" }, "not_found");
    await failsWith(client(), "sandbox_kill", { sandboxId: id }, "not_found");
  });
}
