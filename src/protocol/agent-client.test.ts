/**
 * Runs the real kiln-agent binary on the host (no sandbox) and drives it
 * through AgentClient. Builds it with scripts/build-agent.sh when needed and
 * skips only when that build is impossible.
 */
import assert from "node:assert/strict";
import { type ChildProcessWithoutNullStreams, spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { AgentClient, AgentError } from "./agent-client.ts";
import { encodeFrame, encodeJsonFrame, FrameType } from "./frames.ts";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const binary = join(root, "agent", "target", "kiln-agent");

function buildAgent(): string | undefined {
  const r = spawnSync("bash", [join(root, "scripts", "build-agent.sh")], { encoding: "utf8" });
  if (r.status === 0) return undefined;
  return `cannot build the agent: ${(r.stderr || r.error?.message || "").trim().split("\n").slice(-3).join(" / ")}`;
}

const skipReason = buildAgent();
if (skipReason) console.log(`# skipping agent tests: ${skipReason}`);

interface Agent {
  client: AgentClient;
  child: ChildProcessWithoutNullStreams;
  /** Resolves with the agent's exit code (or signal name). */
  exit: Promise<number | string>;
}

async function startAgent(cwd: string): Promise<Agent> {
  const child = spawn(binary, [], { cwd, stdio: ["pipe", "pipe", "pipe"] });
  child.stderr.on("data", (d) => process.stderr.write(`[agent] ${d}`));
  const exit = new Promise<number | string>((resolve) =>
    child.on("exit", (code, signal) => resolve(code ?? signal ?? -1)),
  );
  const client = await AgentClient.connect(child.stdout, child.stdin, { timeoutMs: 5000 });
  return { client, child, exit };
}

interface RunResult {
  exitCode: number;
  stdout: Buffer;
  stderr: Buffer;
}

async function run(
  client: AgentClient,
  command: string,
  options: { cwd?: string; stdin?: Uint8Array | "pipe" } = {},
): Promise<RunResult> {
  const out: Uint8Array[] = [];
  const err: Uint8Array[] = [];
  const proc = await client.spawn({
    command,
    cwd: options.cwd ?? "/",
    env: { PATH: "/usr/local/bin:/usr/bin:/bin", HOME: "/tmp" },
    stdin: options.stdin,
    onStdout: (c) => out.push(c),
    onStderr: (c) => err.push(c),
  });
  const { exitCode } = await proc.exited;
  return { exitCode, stdout: Buffer.concat(out), stderr: Buffer.concat(err) };
}

function streamOf(data: Uint8Array, chunk = 100_000): ReadableStream<Uint8Array> {
  let at = 0;
  return new ReadableStream({
    pull(c) {
      if (at >= data.length) c.close();
      else {
        c.enqueue(data.subarray(at, at + chunk));
        at += chunk;
      }
    },
  });
}

async function collect(stream: ReadableStream<Uint8Array>): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const part of stream) parts.push(part);
  return Buffer.concat(parts);
}

async function rejectsWith(p: Promise<unknown>, errno: string): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof AgentError, `expected AgentError, got ${e}`);
    assert.equal(e.errno, errno, e.message);
    return true;
  });
}

/** True once `pid` no longer exists (the agent reaps orphans, so no zombie lingers). */
async function gone(pid: number, withinMs = 3000): Promise<boolean> {
  const end = Date.now() + withinMs;
  while (Date.now() < end) {
    try {
      process.kill(pid, 0);
    } catch {
      return true;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return false;
}

describe("kiln-agent", { skip: skipReason }, () => {
  let dir = "";
  let agent: Agent;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "kiln-agent-test-"));
    agent = await startAgent(dir);
  });

  after(async () => {
    await agent?.client.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test("handshake announces protocol 1, pid and ops; ping answers", async () => {
    const { hello } = agent.client;
    assert.equal(hello.protocol, 1);
    assert.equal(hello.pid, agent.child.pid);
    assert.ok(hello.ops.includes("spawn") && hello.ops.includes("write"));
    const pong = await agent.client.ping();
    assert.equal(pong.version, hello.version);
    assert.deepEqual(pong.ops, hello.ops, "ping names the ops too (a restored agent's host never saw HELLO)");
  });

  test("hold: no frame after its answer until the host's next frame; clock: only a VM's agent", async () => {
    const out: Uint8Array[] = [];
    const proc = await agent.client.spawn({
      command: "sleep 0.3; echo late",
      cwd: "/",
      env: { PATH: "/usr/local/bin:/usr/bin:/bin" },
      stdin: undefined,
      onStdout: (c) => out.push(c),
      onStderr: () => {},
    });
    await agent.client.hold();
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal(Buffer.concat(out).toString(), "", "the agent wrote while held");
    await agent.client.ping();
    assert.equal((await proc.exited).exitCode, 0);
    assert.equal(Buffer.concat(out).toString(), "late\n");
    await rejectsWith(agent.client.setClock(Date.now()), "ENOTSUP");
  });

  test("adopt: fields checked before anything is done; only a VM's agent", async () => {
    const bytes = new Uint8Array(32).fill(7);
    await rejectsWith(agent.client.adopt("-bad-", 10, bytes), "EINVAL");
    await rejectsWith(agent.client.adopt("ok", 0, bytes), "EINVAL");
    await rejectsWith(agent.client.adopt("ok", 10, new Uint8Array(4)), "EINVAL");
    await rejectsWith(agent.client.adopt("ok", 10, bytes), "ENOTSUP");
  });

  test("echo", async () => {
    const r = await run(agent.client, "echo hello");
    assert.equal(r.stdout.toString(), "hello\n");
    assert.equal(r.exitCode, 0);
  });

  test("exit codes, including 128+N after a signal", async () => {
    assert.equal((await run(agent.client, "exit 3")).exitCode, 3);
    assert.equal((await run(agent.client, "false")).exitCode, 1);
    assert.equal((await run(agent.client, "kill -TERM $$")).exitCode, 128 + 15);
  });

  test("stdout and stderr stay separate; cwd and env apply", async () => {
    const r = await run(agent.client, 'echo out; echo err >&2; echo "$PWD $HOME"', { cwd: dir });
    assert.equal(r.stdout.toString(), `out\n${dir} /tmp\n`);
    assert.equal(r.stderr.toString(), "err\n");
  });

  test("a missing cwd fails the spawn with ENOENT", async () => {
    await rejectsWith(run(agent.client, "true", { cwd: join(dir, "nope") }), "ENOENT");
  });

  test("stdin: piped writes reach cat; bytes given up front too; none means EOF", async () => {
    const out: Uint8Array[] = [];
    const proc = await agent.client.spawn({
      command: "cat",
      cwd: "/",
      env: {},
      stdin: "pipe",
      onStdout: (c) => out.push(c),
      onStderr: () => {},
    });
    await proc.writeStdin(Buffer.from("one "));
    await proc.writeStdin(Buffer.from("two"));
    await proc.closeStdin();
    assert.equal((await proc.exited).exitCode, 0);
    assert.equal(Buffer.concat(out).toString(), "one two");

    const big = randomBytes(3 * 1024 * 1024);
    const r = await run(agent.client, "cat", { stdin: big });
    assert.ok(r.stdout.equals(big), "3 MiB through stdin and back");
    assert.equal((await run(agent.client, "cat")).stdout.length, 0);
  });

  test("10 MB of output arrives intact before EXIT", async () => {
    const r = await run(agent.client, "head -c 10485760 /dev/urandom > big.bin && cat big.bin", { cwd: dir });
    assert.equal(r.exitCode, 0);
    assert.equal(r.stdout.length, 10485760);
    assert.ok(r.stdout.equals(readFileSync(join(dir, "big.bin"))));
  });

  test("20 processes run concurrently", async () => {
    const runs = Array.from({ length: 20 }, (_, i) =>
      run(agent.client, `echo start-${i}; sleep 0.3; echo end-${i} >&2; exit ${i}`),
    );
    const results = await Promise.all(runs);
    results.forEach((r, i) => {
      assert.equal(r.stdout.toString(), `start-${i}\n`);
      assert.equal(r.stderr.toString(), `end-${i}\n`);
      assert.equal(r.exitCode, i);
    });
  });

  test("kill ends a process with 128+9", async () => {
    const proc = await agent.client.spawn({
      command: "sleep 100",
      cwd: "/",
      env: {},
      stdin: undefined,
      onStdout: () => {},
      onStderr: () => {},
    });
    assert.ok(proc.pid > 0);
    await proc.kill();
    assert.equal((await proc.exited).exitCode, 128 + 9);
    await proc.kill(); // after exit: a no-op
  });

  test("kill reaches the whole process group", async () => {
    let out = "";
    const proc = await agent.client.spawn({
      command: "sleep 100 & echo $!; sleep 100; wait",
      cwd: "/",
      env: {},
      stdin: undefined,
      onStdout: (c) => {
        out += Buffer.from(c).toString();
      },
      onStderr: () => {},
    });
    while (!out.includes("\n")) await new Promise((r) => setTimeout(r, 10));
    const background = Number(out.trim());
    await proc.kill("SIGKILL");
    assert.equal((await proc.exited).exitCode, 137);
    assert.ok(await gone(background), "the background sleep died too");
  });

  test("a background job does not hold back EXIT", async () => {
    const t0 = Date.now();
    const r = await run(agent.client, "sleep 5 & echo started");
    assert.equal(r.stdout.toString(), "started\n");
    assert.ok(Date.now() - t0 < 4000, "EXIT came when bash exited, not when the sleep did");
  });

  test("orphans re-parented to the agent are reaped (no zombies)", async () => {
    await run(agent.client, "(sleep 0.1 &); exit 0");
    await new Promise((r) => setTimeout(r, 400));
    const zombies = spawnSync("ps", ["-o", "stat=,pid=", "--ppid", String(agent.child.pid)], {
      encoding: "utf8",
    });
    assert.ok(!/^\s*Z/m.test(zombies.stdout ?? ""), `zombie children: ${zombies.stdout}`);
  });

  test("files: 5 MB binary write/read round trip and stat", async () => {
    const data = randomBytes(5 * 1024 * 1024);
    const path = join(dir, "sub", "deep", "blob.bin");
    const info = await agent.client.write(path, streamOf(data), 10 * 1024 * 1024);
    assert.equal(info.type, "file");
    assert.equal(info.size, data.length);
    assert.equal(info.path, path);
    assert.equal(info.name, "blob.bin");
    assert.ok(readFileSync(path).equals(data));
    assert.ok((await collect(await agent.client.read(path))).equals(data));
    const st = await agent.client.stat(path);
    assert.equal(st.size, data.length);
    assert.equal(st.mode & 0o777, 0o644 & ~process.umask());
    assert.ok(Math.abs(st.mtimeMs - Date.now()) < 60_000);
  });

  test("files: a slow reader holds the agent back without losing bytes", async () => {
    const data = randomBytes(4 * 1024 * 1024);
    writeFileSync(join(dir, "slow.bin"), data);
    const reader = (await agent.client.read(join(dir, "slow.bin"))).getReader();
    await new Promise((r) => setTimeout(r, 100)); // the agent stops at its window meanwhile
    const parts: Uint8Array[] = [];
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      parts.push(value);
    }
    assert.ok(Buffer.concat(parts).equals(data));
  });

  test("files: cancelling a read stops it; the agent keeps serving", async () => {
    writeFileSync(join(dir, "cancel.bin"), randomBytes(8 * 1024 * 1024));
    const stream = await agent.client.read(join(dir, "cancel.bin"));
    const reader = stream.getReader();
    await reader.read();
    await reader.cancel();
    await agent.client.ping();
  });

  test("files: mkdir, list depth 2, rename, symlink, remove", async () => {
    const base = join(dir, "tree");
    assert.equal(await agent.client.mkdir(join(base, "a", "b")), true);
    assert.equal(await agent.client.mkdir(join(base, "a")), false);
    await agent.client.write(join(base, "a", "b", "deep.txt"), streamOf(Buffer.from("x")), 10);
    await agent.client.write(join(base, "top.txt"), streamOf(Buffer.from("hello")), 10);
    await agent.client.symlink("top.txt", join(base, "link"));

    const link = await agent.client.stat(join(base, "link"));
    assert.equal(link.type, "symlink");
    assert.equal(link.symlinkTarget, "top.txt");
    assert.equal(link.size, "top.txt".length);

    const names = (await agent.client.list(base, 2)).map((e) => `${e.type}:${e.path.slice(base.length)}`);
    assert.deepEqual(names, ["dir:/a", "dir:/a/b", "symlink:/link", "file:/top.txt"]);
    assert.equal((await agent.client.list(base, 3)).length, 5);

    await agent.client.rename(join(base, "top.txt"), join(base, "renamed.txt"));
    await rejectsWith(agent.client.stat(join(base, "top.txt")), "ENOENT");
    assert.equal((await agent.client.stat(join(base, "renamed.txt"))).size, 5);
    await rejectsWith(agent.client.symlink("x", join(base, "renamed.txt")), "EEXIST");

    await agent.client.remove(join(base, "a"));
    await agent.client.remove(join(base, "link"));
    const left = (await agent.client.list(base, 2)).map((e) => e.name);
    assert.deepEqual(left, ["renamed.txt"]);
  });

  test("files: a name that is not UTF-8 is listed lossy (U+FFFD), and so is what is below it; none is left out", async () => {
    const base = join(dir, "raw");
    const bad = Buffer.concat([Buffer.from(`${base}/`), Buffer.from([0xff, 0xfe])]);
    mkdirSync(bad, { recursive: true });
    writeFileSync(Buffer.concat([bad, Buffer.from("/f")]), "x");
    writeFileSync(join(base, "ok"), "y");
    const listed = await agent.client.listWithSpecial(base, 2);
    assert.deepEqual(
      listed.map((e) => [e.entry.path.slice(base.length), e.lossy]),
      [
        ["/ok", false],
        ["/\ufffd\ufffd", true],
        ["/\ufffd\ufffd/f", true],
      ],
    );
  });

  test("files: chmod and utimes", async () => {
    const path = join(dir, "perm.txt");
    await agent.client.write(path, streamOf(Buffer.from("p")), 10);
    await agent.client.chmod(path, 0o600);
    await agent.client.utimes(path, 1_600_000_000_123);
    const st = await agent.client.stat(path);
    assert.equal(st.mode, 0o600);
    assert.equal(st.mtimeMs, 1_600_000_000_123);
  });

  test("files: errors carry errno codes", async () => {
    const missing = join(dir, "missing");
    await rejectsWith(agent.client.stat(missing), "ENOENT");
    await rejectsWith(agent.client.list(missing, 1), "ENOENT");
    await rejectsWith(agent.client.read(missing), "ENOENT");
    await rejectsWith(agent.client.remove(missing), "ENOENT");
    await rejectsWith(agent.client.rename(missing, join(dir, "x")), "ENOENT");
    await rejectsWith(agent.client.read(dir), "EISDIR");
    await rejectsWith(agent.client.write(dir, streamOf(Buffer.from("x")), 10), "EISDIR");
    writeFileSync(join(dir, "plain"), "p");
    await rejectsWith(agent.client.list(join(dir, "plain"), 1), "ENOTDIR");
    await rejectsWith(agent.client.mkdir(join(dir, "plain")), "EEXIST");
  });

  test("files: a write past maxBytes fails with EFBIG and leaves the old file", async () => {
    const path = join(dir, "limited.bin");
    writeFileSync(path, "old");
    await rejectsWith(agent.client.write(path, streamOf(randomBytes(1_000_000)), 500_000), "EFBIG");
    assert.equal(readFileSync(path, "utf8"), "old");
    const names = (await agent.client.list(dir, 1)).map((e) => e.name);
    assert.ok(!names.some((n) => n.includes(".kiln-")), "temporary file removed");
  });

  test("an unknown op or frame type is answered with an error, not a crash", async () => {
    const client = agent.client as unknown as {
      request(op: string, body: object): Promise<unknown>;
    };
    await rejectsWith(client.request("frobnicate", {}), "ENOSYS");
    agent.client.send(encodeFrame(0x7f, 0xfffffff0));
    await agent.client.ping();
  });
});

describe("kiln-agent lifecycle", { skip: skipReason }, () => {
  let dir = "";
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "kiln-agent-life-"));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test("a malformed frame makes the agent report EPROTO and exit", async () => {
    const { client, child, exit } = await startAgent(dir);
    child.stdin.write(Buffer.from([0, 0, 0, 1, 0xff])); // length 1 < header
    await client.closed;
    const code = await exit;
    assert.equal(code, 2);
    await rejectsWith(client.ping(), "EPROTO");
  });

  test("invalid JSON in a request is an EINVAL error; the agent keeps going", async () => {
    const { client, child } = await startAgent(dir);
    const errors: string[] = [];
    child.stdout.on("data", (d: Buffer) => {
      if (d.includes("bad request JSON")) errors.push("EINVAL");
    });
    child.stdin.write(encodeFrame(FrameType.Request, 4242, Buffer.from("{not json")));
    await client.ping();
    assert.deepEqual(errors, ["EINVAL"]);
    child.stdin.write(encodeJsonFrame(FrameType.Request, 4243, { op: "ping" }));
    await client.close();
  });

  test("closing its stdin makes the agent kill its processes and exit", async () => {
    const { client, exit } = await startAgent(dir);
    let out = "";
    const proc = await client.spawn({
      command: "sleep 100 & echo $!; exec sleep 100",
      cwd: "/",
      env: {},
      stdin: "pipe",
      onStdout: (c) => {
        out += Buffer.from(c).toString();
      },
      onStderr: () => {},
    });
    while (!out.includes("\n")) await new Promise((r) => setTimeout(r, 10));
    await client.close();
    assert.equal(await exit, 0);
    // Racy by nature: the agent may report the killed process's EXIT before it goes.
    const ended = await proc.exited.then(
      (s) => s.exitCode,
      (e: AgentError) => e.errno,
    );
    assert.ok(ended === 137 || ended === "ECONNRESET", `exited with ${ended}`);
    assert.ok(await gone(proc.pid), "the main process died");
    assert.ok(await gone(Number(out.trim())), "its background child died");
  });
});
