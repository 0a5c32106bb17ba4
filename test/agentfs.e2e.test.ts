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
import { DatabaseSync } from "node:sqlite";
import { after, before, describe, test } from "node:test";
import { digestStateDir } from "../src/core/state-files.ts";
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

/**
 * Rewrites a closed virtual workspace database as Kiln wrote them before the agent's files
 * moved to the AgentFS root: the shell's root at inode 1, the agent's files under /workspace.
 */
function toOldLayout(path: string): void {
  const db = new DatabaseSync(path);
  try {
    const shell = Number(
      db.prepare("SELECT value FROM fs_config WHERE key = 'kiln.shell_root'").get()!.value,
    );
    db.exec("BEGIN");
    const ws = Number(
      db
        .prepare(
          "INSERT INTO fs_inode (mode, nlink, uid, gid, atime, mtime, ctime) SELECT mode, 1, uid, gid, atime, mtime, ctime FROM fs_inode WHERE ino = 1 RETURNING ino",
        )
        .get()!.ino,
    );
    db.prepare("UPDATE fs_dentry SET parent_ino = ? WHERE parent_ino = 1").run(ws);
    db.prepare("DELETE FROM fs_dentry WHERE ino = 1").run();
    db.prepare("UPDATE fs_dentry SET parent_ino = 1 WHERE parent_ino = ?").run(shell);
    db.prepare("INSERT INTO fs_dentry (name, parent_ino, ino) VALUES ('workspace', 1, ?)").run(ws);
    db.prepare("UPDATE fs_inode SET nlink = 1, mode = 16877 WHERE ino = 1").run();
    db.prepare("DELETE FROM fs_inode WHERE ino = ?").run(shell);
    db.exec("DELETE FROM fs_config WHERE key = 'kiln.shell_root'; COMMIT; PRAGMA user_version = 1;");
    db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
  } finally {
    db.close();
  }
}

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
    // Not just out of sight: the shell's tree (/tmp here) is not in the file at all.
    const raw = new DatabaseSync(exported, { readOnly: true });
    try {
      assert.equal(raw.prepare("SELECT 1 FROM fs_dentry WHERE name = 'not-exported'").get(), undefined);
      assert.equal(raw.prepare("SELECT 1 FROM fs_config WHERE key = 'kiln.shell_root'").get(), undefined);
    } finally {
      raw.close();
    }
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

  test("the live workspace file has the agent's files at its root: agentfs-sdk reads and writes it while no Kiln has it open", async () => {
    const other = mkdtempSync(join(tmpdir(), "kiln-agentfs-live-"));
    try {
      let k = await Kiln.open({ dataDir: other });
      const s = await k.create({ tier: "virtual" });
      const r = await s.commands.run(
        "echo kept > kept.txt && mkdir d && ln -s kept.txt l && echo t > /tmp/t && stat -c '%Y %y' kept.txt",
      );
      assert.equal(r.exitCode, 0, r.stderr);
      const [seconds, ...human] = r.stdout.trim().split(" ");
      // stat shows the stored nanoseconds (the odds of a whole millisecond are one in a million).
      assert.match(human.join(" "), /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{9} \+0000$/);
      assert.doesNotMatch(human.join(" "), /000000 \+0000$/);
      await k.close();
      const path = JSON.stringify(join(other, "sandboxes", s.id, "workspace.db"));
      const seen = await withSdk(`
        const a = await AgentFS.open({ path: ${path} });
        const out = {
          names: (await a.fs.readdir("/")).sort(),
          kept: await a.fs.readFile("/kept.txt", "utf8"),
          link: await a.fs.readlink("/l"),
          mtime: (await a.fs.stat("/kept.txt")).mtime,
        };
        await a.fs.writeFile("/from-sdk.txt", "sdk\\n");
        await a.close();
        return out;`);
      assert.deepEqual(seen, {
        names: ["d", "kept.txt", "l"],
        kept: "kept\n",
        link: "kept.txt",
        mtime: Number(seconds),
      });
      k = await Kiln.open({ dataDir: other });
      try {
        const back = await (await k.connect(s.id)).commands.run("cat from-sdk.txt /workspace/l /tmp/t");
        assert.equal(back.stdout, "sdk\nkept\nt\n", back.stderr);
      } finally {
        await k.close();
      }
    } finally {
      rmSync(other, { recursive: true, force: true });
    }
  });

  test("a workspace and a snapshot from before the agent's files moved to the AgentFS root keep working (converted on open)", async () => {
    const other = mkdtempSync(join(tmpdir(), "kiln-agentfs-old-"));
    try {
      let k = await Kiln.open({ dataDir: other });
      const s = await k.create({ tier: "virtual" });
      const r = await s.commands.run(
        "echo old > old.txt && chmod 600 old.txt && ln -s old.txt l && echo t > /tmp/t",
      );
      assert.equal(r.exitCode, 0, r.stderr);
      const snap = await s.snapshot();
      await k.close();
      toOldLayout(join(other, "sandboxes", s.id, "workspace.db"));
      const snapDir = join(other, "snapshots", snap.id);
      toOldLayout(join(snapDir, "workspace.db"));
      const records = new DatabaseSync(join(other, "kiln.db"));
      try {
        records
          .prepare("UPDATE snapshots SET digest = ? WHERE id = ?")
          .run(await digestStateDir(snapDir), snap.id);
      } finally {
        records.close();
      }
      // The old layout, as an AgentFS tool saw it.
      const before = await withSdk(`
        const a = await AgentFS.open({ path: ${JSON.stringify(join(other, "sandboxes", s.id, "workspace.db"))} });
        return (await a.fs.readdir("/")).sort();`);
      assert.ok(before.includes("workspace"), `not the old layout: ${before}`);

      k = await Kiln.open({ dataDir: other });
      try {
        const want = "old\nold\nt\n600\n";
        const script = "cat old.txt l /tmp/t; stat -c %a old.txt";
        const reopened = await (await k.connect(s.id)).commands.run(script);
        assert.equal(reopened.stdout, want, reopened.stderr);
        const fromSnap = await k.create({ snapshot: snap.id });
        const restored = await fromSnap.commands.run(script);
        assert.equal(restored.stdout, want, restored.stderr);
        const exported = join(other, "exported.db");
        await fromSnap.exportAgentFs(exported);
        await fromSnap.kill();
        const names = await withSdk(`
          const a = await AgentFS.open({ path: ${JSON.stringify(exported)} });
          return (await a.fs.readdir("/")).sort();`);
        assert.deepEqual(names, ["l", "old.txt"]);
      } finally {
        await k.close();
      }
      const after = await withSdk(`
        const a = await AgentFS.open({ path: ${JSON.stringify(join(other, "sandboxes", s.id, "workspace.db"))} });
        return (await a.fs.readdir("/")).sort();`);
      assert.deepEqual(after, ["l", "old.txt"], "the workspace was not converted");
    } finally {
      rmSync(other, { recursive: true, force: true });
    }
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
      // The same through the command line: `kiln exec` fails at once, naming the conflict.
      const viaCli = await cli(other, ["--json", "exec", s.id, "--", "cat kept.txt"]);
      assert.notEqual(viaCli.code, 0);
      assert.equal(JSON.parse(viaCli.stderr).error.code, "conflict", viaCli.stderr);
      holder.kill("SIGKILL");
      await new Promise((r) => holder?.once("exit", r));
      k = await Kiln.open({ dataDir: other });
      try {
        assert.equal((await (await k.connect(s.id)).commands.run("cat kept.txt")).stdout, "kept\n");
        // The other way round: while Kiln has it open, the SDK cannot take it (and Kiln's files are safe).
        const refused = await holdWithSdk(join(other, "sandboxes", s.id, "workspace.db"));
        refused.child.kill("SIGKILL");
        assert.equal(refused.ok, false, "the SDK opened a workspace Kiln has open");
        // Its own error says why (the Turso engine does not wait for a lock).
        assert.match(refused.message, /lock/i);
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
