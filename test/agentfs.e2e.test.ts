/**
 * Kiln's workspace as a true AgentFS file, checked with AgentFS's own SDK
 * (`agentfs-sdk`, on the Turso engine): `kiln export --agentfs` of a live
 * sandbox opens in it with the agent's files at its root (contents,
 * symlinks, modes, the key-value store, the tool-call log); what the SDK
 * writes, and a file the SDK made from nothing, come back with
 * `kiln import --agentfs`; and a workspace file held open by an AgentFS tool
 * makes Kiln fail at once with `conflict`, not wait out a busy timeout.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { Kiln, type Sandbox } from "../src/index.ts";
import { kiln as cli, ROOT } from "./cli-run.ts";
import { rejectsWithCode, tierRequired } from "./conformance/suite.ts";

const BINARY = Buffer.from(Array.from({ length: 5000 }, (_, i) => (i * 7) % 256));

/**
 * Runs `body` (the inside of an async function with `AgentFS` and `sha256` in scope) in another
 * process, as another program would, and returns what it returns (as JSON). The Turso engine
 * releases a file's lock only when its handle is collected, so no SDK handle lives in this process.
 */
// biome-ignore lint/suspicious/noExplicitAny: JSON that another process printed
async function withSdk(body: string): Promise<any> {
  const code = `
        import { AgentFS } from "agentfs-sdk";
        import { createHash } from "node:crypto";
    const sha256 = (b) => createHash("sha256").update(b).digest("hex");
    const out = await (async () => { ${body} })();
    process.stdout.write(JSON.stringify(out ?? null));
    process.exit(0);`;
  const child = spawn(process.execPath, ["--input-type=module", "-e", code], { cwd: ROOT, stdio: "pipe" });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (d: string) => {
    stdout += d;
  });
  child.stderr.setEncoding("utf8").on("data", (d: string) => {
    stderr += d;
  });
  const exitCode = await new Promise<number | null>((resolve, reject) => {
    child.once("error", reject);
    child.once("close", resolve);
  });
  assert.equal(exitCode, 0, `agentfs-sdk failed: ${stderr}`);
  return JSON.parse(stdout);
}

const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

/** A process holding `path` open with agentfs-sdk until killed; resolves once it has it (or with its error). */
function holdWithSdk(path: string): Promise<{ child: ChildProcess; ok: boolean; message: string }> {
  const code = `
        import { AgentFS } from "agentfs-sdk";
    try {
      const a = await AgentFS.open({ path: ${JSON.stringify(path)} });
      await a.fs.readdir("/");
      console.log("holding");
      setInterval(() => {}, 1000);
    } catch (e) {
      console.log("failed " + String(e?.message ?? e).split("\\n")[0]);
      process.exit(3);
    }`;
  const child = spawn(process.execPath, ["--input-type=module", "-e", code], { cwd: ROOT, stdio: "pipe" });
  return new Promise((resolve, reject) => {
    let out = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => {
      out += d;
      if (out.includes("\n")) resolve({ child, ok: out.startsWith("holding"), message: out.trim() });
    });
    child.once("error", reject);
    child.once("exit", () => resolve({ child, ok: false, message: out.trim() || "exited" }));
  });
}

describe("AgentFS: Kiln's workspace file in AgentFS's own SDK, and back", () => {
  let dir = "";
  let kiln: Kiln;
  let sb: Sandbox;
  let exported = "";

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "kiln-agentfs-"));
    kiln = await Kiln.open({ dataDir: dir });
    sb = await kiln.create({ tier: "virtual" });
    await sb.files.write("/workspace/hello.txt", "hello agentfs\n");
    await sb.files.write("/workspace/dir/nested.bin", BINARY);
    const r = await sb.commands.run(
      "ln -s hello.txt link && echo s > secret && chmod 600 secret && printf '#!/bin/sh\\n' > run.sh && chmod 755 run.sh && echo tmp > /tmp/not-exported",
    );
    assert.equal(r.exitCode, 0, r.stderr);
    exported = join(dir, "exported.db");
  });

  after(async () => {
    await kiln?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test("an export of a live sandbox opens in agentfs-sdk with the agent's files at its root", async () => {
    // A command keeps appending while the copy is taken: the copy holds whole lines, in order.
    const writer = sb.commands.run("for i in $(seq 1 1000); do echo line-$i >> grow.log; done");
    await sb.exportAgentFs(exported);
    assert.equal((await writer).exitCode, 0);

    const p = JSON.stringify(exported);
    const seen = await withSdk(`
      const a = await AgentFS.open({ path: ${p} });
      const st = async (f) => (await a.fs.stat(f)).mode & 0o777;
      const names = (await a.fs.readdir("/")).sort();
      return {
        names,
        hello: await a.fs.readFile("/hello.txt", "utf8"),
        nested: sha256(await a.fs.readFile("/dir/nested.bin")),
        linkIsLink: (await a.fs.lstat("/link")).isSymbolicLink(),
        link: await a.fs.readlink("/link"),
        secret: await st("/secret"),
        run: await st("/run.sh"),
        grow: names.includes("grow.log") ? await a.fs.readFile("/grow.log", "utf8") : "",
        createdAt: await a.kv.get("kiln.createdAt"),
        calls: (await a.tools.getByName("bash", 100)).map((c) => JSON.stringify(c.parameters)),
      };`);
    for (const n of ["dir", "hello.txt", "link", "run.sh", "secret"])
      assert.ok(seen.names.includes(n), `no /${n}: ${seen.names}`);
    for (const n of ["workspace", "tmp", "home", "dev"])
      assert.ok(!seen.names.includes(n), `/${n} exported: ${seen.names}`);
    assert.equal(seen.hello, "hello agentfs\n");
    assert.equal(seen.nested, sha256(BINARY));
    assert.equal(seen.linkIsLink, true);
    assert.equal(seen.link, "hello.txt");
    assert.equal(seen.secret, 0o600);
    assert.equal(seen.run, 0o755);
    const lines = (seen.grow as string).split("\n").filter(Boolean);
    assert.deepEqual(
      lines,
      lines.map((_, i) => `line-${i + 1}`),
    );
    // The key-value store and the tool-call log came along.
    assert.equal(typeof seen.createdAt, "string");
    assert.ok(
      (seen.calls as string[]).some((c) => c.includes("chmod 600 secret")),
      "the audit log's command is not in the tool-call log",
    );
  });

  test("what agentfs-sdk writes into an exported file comes back with kiln import --agentfs", async () => {
    const p = JSON.stringify(exported);
    await withSdk(`
      const a = await AgentFS.open({ path: ${p} });
      await a.fs.writeFile("/from-sdk.txt", "written by the SDK\\n");
      await a.fs.mkdir("/sdk-dir");
      await a.fs.writeFile("/sdk-dir/data.bin", await a.fs.readFile("/dir/nested.bin"));
      await a.fs.symlink("from-sdk.txt", "/sdk-link");
      await a.kv.set("answer", { n: 42 });
      await a.tools.record("sdk-tool", 1000, 1001, { x: 1 }, { ok: true });
      await a.close();`);
    // The SDK reads back its own writes, with Kiln's.
    const back = await withSdk(`
      const a = await AgentFS.open({ path: ${p} });
      return { answer: await a.kv.get("answer"), calls: (await a.tools.getByName("sdk-tool")).length };`);
    assert.deepEqual(back, { answer: { n: 42 }, calls: 1 });

    const r = await cli(dir, ["import", "--agentfs", exported], { guardMs: 120_000 });
    assert.equal(r.code, 0, r.stderr);
    const imported = await kiln.connect(r.stdout.trim());
    const md5 = createHash("md5").update(BINARY).digest("hex");
    const out = await imported.commands.run(
      "cat from-sdk.txt hello.txt; readlink sdk-link link; stat -c '%a %n' secret run.sh; md5sum < sdk-dir/data.bin; md5sum < dir/nested.bin",
    );
    assert.equal(
      out.stdout,
      `written by the SDK\nhello agentfs\nfrom-sdk.txt\nhello.txt\n600 secret\n755 run.sh\n${md5}  -\n${md5}  -\n`,
      out.stderr,
    );
  });

  test("a file agentfs-sdk made from nothing imports into a sandbox", async () => {
    const path = join(dir, "made-by-sdk.db");
    await withSdk(`
      const a = await AgentFS.open({ path: ${JSON.stringify(path)} });
      await a.fs.mkdir("/project");
      await a.fs.writeFile("/project/README.md", "# made elsewhere\\n");
      await a.fs.symlink("project/README.md", "/readme");
      await a.close();`);
    const r = await cli(dir, ["--json", "import", "--agentfs", path], { guardMs: 120_000 });
    assert.equal(r.code, 0, r.stderr);
    const imported = await kiln.connect(JSON.parse(r.stdout).id);
    const out = await imported.commands.run("cat readme; test -L readme && echo link");
    assert.equal(out.stdout, "# made elsewhere\nlink\n", out.stderr);
  });

  test("a namespace sandbox exports as an AgentFS file too (from a tar of /workspace)", async (t) => {
    const status = (await kiln.doctor()).find((s) => s.tier === "namespace");
    if (!status?.available) {
      if (tierRequired("namespace"))
        assert.fail(`tier namespace required but unavailable: ${status?.reason}`);
      t.skip(`tier namespace unavailable: ${status?.reason}`);
      return;
    }
    const ns = await kiln.create({
      tier: "namespace",
      template: process.env.KILN_TEST_TEMPLATE ?? "default",
    });
    try {
      const r = await ns.commands.run("echo real > real.txt && ln -s real.txt r && chmod 640 real.txt");
      assert.equal(r.exitCode, 0, r.stderr);
      const path = join(dir, "from-namespace.db");
      await ns.exportAgentFs(path);
      const seen = await withSdk(`
        const a = await AgentFS.open({ path: ${JSON.stringify(path)} });
        return {
          names: (await a.fs.readdir("/")).sort(),
          text: await a.fs.readFile("/real.txt", "utf8"),
          link: await a.fs.readlink("/r"),
          mode: (await a.fs.stat("/real.txt")).mode & 0o777,
          calls: (await a.tools.getByName("bash", 10)).length,
        };`);
      assert.deepEqual(seen, {
        names: ["r", "real.txt"],
        text: "real\n",
        link: "real.txt",
        mode: 0o640,
        calls: 1,
      });
    } finally {
      await ns.kill();
    }
  });

  test("importing a file that is not AgentFS is invalid_argument and makes no sandbox", async () => {
    const junk = join(dir, "junk.db");
    writeFileSync(junk, "not a database at all");
    const before = (await kiln.list()).length;
    const r = await cli(dir, ["--json", "import", "--agentfs", junk]);
    assert.notEqual(r.code, 0);
    assert.equal(JSON.parse(r.stderr).error.code, "invalid_argument");
    assert.equal((await kiln.list()).length, before);
  });

  test("a workspace an AgentFS tool holds open: Kiln fails at once with conflict, and works once it is closed", async () => {
    const other = mkdtempSync(join(tmpdir(), "kiln-agentfs-lock-"));
    let holder: ChildProcess | undefined;
    try {
      let k = await Kiln.open({ dataDir: other });
      const s = await k.create({ tier: "virtual" });
      await s.commands.run("echo kept > kept.txt");
      await k.close();
      const held = await holdWithSdk(join(other, "sandboxes", s.id, "workspace.db"));
      holder = held.child;
      assert.ok(held.ok, `the SDK could not open a closed workspace: ${held.message}`);
      k = await Kiln.open({ dataDir: other });
      try {
        await rejectsWithCode(
          (async () => (await k.connect(s.id)).commands.run("cat kept.txt"))(),
          "conflict",
        );
      } finally {
        await k.close();
      }
      holder.kill("SIGKILL");
      await new Promise((r) => holder?.once("exit", r));
      k = await Kiln.open({ dataDir: other });
      try {
        assert.equal((await (await k.connect(s.id)).commands.run("cat kept.txt")).stdout, "kept\n");
        // The other way round: while Kiln has it open, the SDK cannot take it (and Kiln's files are safe).
        const refused = await holdWithSdk(join(other, "sandboxes", s.id, "workspace.db"));
        refused.child.kill("SIGKILL");
        assert.equal(refused.ok, false, "the SDK opened a workspace Kiln has open");
        assert.equal((await (await k.connect(s.id)).commands.run("cat kept.txt")).stdout, "kept\n");
      } finally {
        await k.close();
      }
    } finally {
      holder?.kill("SIGKILL");
      rmSync(other, { recursive: true, force: true });
    }
  });
});
