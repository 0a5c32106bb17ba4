/**
 * The `kiln` command line end to end, as a user runs it: each test starts the
 * real CLI (src/cli/main.ts, and once the package's bin/kiln.mjs) as a child
 * process on a fresh data directory and checks its stdout, stderr and exit
 * code. Proves, on the virtual tier: `run` (output, exit code, the sandbox is
 * gone afterwards), `create`, `exec` (separate streams, exit code, env, cwd,
 * piped stdin), `ls`, `inspect`, `logs`, `rm`, `cp` both ways (a binary file
 * and a directory), `shell` with piped lines (cwd and exports carry over),
 * `doctor`, `move`, and that errors are one line (or one JSON object with
 * `--json`) with no stack trace. One `run` on the namespace tier when it can
 * run here (KILN_REQUIRE_TIERS=namespace makes its absence a failure).
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { after, before, describe, test } from "node:test";
import { TIER_NAMES, type TierStatus } from "../src/index.ts";
import { startServer } from "../src/server/index.ts";
import { assertExit, kiln, MAIN, ROOT, type Run, show } from "./cli-run.ts";
import { tierRequired } from "./conformance/suite.ts";

const BIN = join(ROOT, "bin", "kiln.mjs");

/** A fresh data directory for the enclosing suite, removed after it. */
function suiteDataDir(): () => string {
  let dir = "";
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "kiln-cli-"));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));
  return () => dir;
}

/** Asserts that `r` failed with exit code `code` and exactly one line on stderr (returned), nothing on stdout. */
function oneErrorLine(r: Run, code: number): string {
  assertExit(r, code);
  assert.equal(r.stdout, "", show(r));
  assert.doesNotMatch(r.stderr, /^\s+at /m, `a stack trace on stderr:\n${r.stderr}`);
  const lines = r.stderr.split("\n");
  assert.equal(lines.length, 2, `expected one line on stderr:\n${r.stderr}`);
  assert.equal(lines[1], "", "stderr does not end with a newline");
  return lines[0]!;
}

/** Parses `ls --json` and returns the ids. */
const idsOf = (r: Run): string[] => (JSON.parse(r.stdout) as { id: string }[]).map((s) => s.id);

/** Every file under `dir` (relative path → contents, base64), and every directory (→ "dir"). */
function tree(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) {
        out[relative(dir, p)] = "dir";
        walk(p);
      } else out[relative(dir, p)] = readFileSync(p).toString("base64");
    }
  };
  walk(dir);
  return out;
}

const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

// `kiln doctor --json` of this machine, once (the doctor test fills it; other tests use it).
let doctorTiers: TierStatus[] | undefined;
async function tierStatuses(dir: string): Promise<TierStatus[]> {
  if (!doctorTiers) {
    const r = await kiln(dir, ["doctor", "--json"]);
    assertExit(r, 0);
    doctorTiers = (JSON.parse(r.stdout) as { tiers: TierStatus[] }).tiers;
  }
  return doctorTiers;
}

describe("kiln doctor", () => {
  const dir = suiteDataDir();

  test("doctor --json lists every tier with available and a reason", async () => {
    const r = await kiln(dir(), ["doctor", "--json"]);
    assertExit(r, 0);
    assert.equal(r.stderr, "");
    const out = JSON.parse(r.stdout) as { dataDir: string; node: string; tiers: TierStatus[] };
    assert.equal(out.dataDir, dir());
    assert.equal(out.node, process.versions.node);
    assert.deepEqual(
      out.tiers.map((t) => t.tier),
      [...TIER_NAMES],
    );
    for (const t of out.tiers) {
      assert.equal(typeof t.available, "boolean", `${t.tier}: available`);
      assert.equal(typeof t.reason, "string", `${t.tier}: reason`);
      assert.ok(t.reason.length > 0, `${t.tier}: empty reason`);
    }
    assert.equal(out.tiers.find((t) => t.tier === "virtual")?.available, true, "virtual runs everywhere");
    // Where E2B sandboxes go: the last (strongest) ready tier that runs a real Linux without
    // emulation, else virtual, saying why.
    const e2b = out as unknown as { e2bTier: string; e2bFallback?: string };
    const real = out.tiers
      .filter((t) => t.available && !t.emulated && t.tier !== "virtual")
      .map((t) => t.tier);
    assert.equal(e2b.e2bTier, real.at(-1) ?? "virtual");
    assert.equal(typeof e2b.e2bFallback, real.length > 0 ? "undefined" : "string");
    doctorTiers = out.tiers;
  });
});

describe("kiln run", () => {
  const dir = suiteDataDir();

  test("run -- 'echo hi | tr a-z A-Z' prints HI", async () => {
    const r = await kiln(dir(), ["run", "--", "echo hi | tr a-z A-Z"]);
    assertExit(r, 0);
    assert.equal(r.stdout, "HI\n");
    assert.equal(r.stderr, "");
  });

  test("a run's exit code and stderr pass through, and its sandbox is gone afterwards", async () => {
    const r = await kiln(dir(), ["run", "--", "echo oops >&2; exit 3"]);
    assertExit(r, 3);
    assert.equal(r.stdout, "");
    assert.equal(r.stderr, "oops\n");
    const ls = await kiln(dir(), ["ls", "--json"]);
    assertExit(ls, 0);
    assert.deepEqual(JSON.parse(ls.stdout), []);
    assert.deepEqual(readdirSync(join(dir(), "sandboxes")), [], "a sandbox directory was left behind");
  });

  test("the package's bin (bin/kiln.mjs, what npx kiln runs) works", async () => {
    const r = await kiln(dir(), ["run", "--", "echo hi | tr a-z A-Z"], { entry: BIN });
    assertExit(r, 0);
    assert.equal(r.stdout, "HI\n");
    assert.equal(r.stderr, "");
  });

  test("run --tier namespace runs real python3", async (t) => {
    const ns = (await tierStatuses(dir())).find((s) => s.tier === "namespace");
    if (!ns?.available) {
      const why = `tier namespace unavailable: ${ns?.reason ?? "not listed by doctor"}`;
      if (tierRequired("namespace")) assert.fail(`${why} (required by KILN_REQUIRE_TIERS)`);
      t.skip(why);
      return;
    }
    const r = await kiln(dir(), ["run", "--tier", "namespace", "--", "python3", "-c", "print(6*7)"]);
    assertExit(r, 0);
    assert.equal(r.stdout, "42\n");
    const ls = await kiln(dir(), ["ls", "--json"]);
    assertExit(ls, 0);
    assert.deepEqual(JSON.parse(ls.stdout), [], "the namespace sandbox outlived its run");
  });

  test("watch --server prints what commands write through the server, until interrupted", async () => {
    const server = await startServer({ dataDir: join(dir(), "served"), port: 0, graceMs: 500 });
    const { key } = server.keys.create({ name: "watcher" });
    const created = await fetch(`${server.url}/v1/sandboxes`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: "{}",
    });
    const id = ((await created.json()) as { id: string }).id;
    const sb = await server.kiln.connect(id);
    await sb.files.makeDir("/workspace/seen/sub");
    const child = spawn(
      process.execPath,
      [MAIN, "watch", "-r", "--server", server.url, id, "/workspace/seen"],
      { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, KILN_API_KEY: key } },
    );
    let out = "";
    let err = "";
    child.stdout.setEncoding("utf8").on("data", (d) => {
      out += d;
    });
    child.stderr.setEncoding("utf8").on("data", (d) => {
      err += d;
    });
    const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
    const wait = async (done: () => boolean) => {
      for (let i = 0; i < 1200 && !done() && child.exitCode === null; i++)
        await new Promise((r) => setTimeout(r, 50));
    };
    try {
      await wait(() => err.includes("watching"));
      assert.match(err, /watching \/workspace\/seen/);
      await sb.commands.run("echo x > /workspace/seen/sub/new.txt");
      await wait(() => out.includes("write sub/new.txt"));
      assert.match(out, /^create sub\/new\.txt$/m, err);
      assert.match(out, /^write sub\/new\.txt$/m, err);
      child.kill("SIGINT");
      assert.equal(await exited, 0, err);
    } finally {
      child.kill("SIGKILL");
      await server.close(500);
    }
  });

  test("stats --server --no-stream prints one sample: CPU (while a loop runs), memory and disk against the limits", async () => {
    const server = await startServer({ dataDir: join(dir(), "stats"), port: 0, graceMs: 500 });
    const { key } = server.keys.create({ name: "stats" });
    const tiers = (await server.kiln.doctor()).filter((t) => t.available).map((t) => t.tier);
    // The strongest tier here; virtual measures disk only.
    const tier = tiers.at(-1) ?? "virtual";
    const created = await fetch(`${server.url}/v1/sandboxes`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: JSON.stringify({ tier }),
    });
    const id = ((await created.json()) as { id: string }).id;
    try {
      const sb = await server.kiln.connect(id);
      await sb.files.write("/workspace/data.bin", new Uint8Array(64 * 1024));
      const loop = await sb.commands.run("while :; do :; done", { background: true, timeoutMs: 0 });
      const r = await new Promise<Run>((resolve) => {
        const child = spawn(
          process.execPath,
          [MAIN, "--json", "stats", "--no-stream", "--interval", "1000", "--server", server.url, id],
          { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, KILN_API_KEY: key } },
        );
        let stdout = "";
        let stderr = "";
        child.stdout.setEncoding("utf8").on("data", (d) => {
          stdout += d;
        });
        child.stderr.setEncoding("utf8").on("data", (d) => {
          stderr += d;
        });
        child.once("exit", (code) => resolve({ code, stdout, stderr }));
      });
      await loop.kill();
      assertExit(r, 0);
      const row = JSON.parse(r.stdout) as Record<string, number | string | undefined>;
      assert.equal(row.id, id);
      assert.equal(row.memoryLimitBytes, 512 * 1024 * 1024);
      assert.ok(Number(row.diskBytes) >= 64 * 1024, r.stdout);
      const real = (await server.kiln.backend(tier)).capabilities.realBinaries;
      if (real) {
        assert.ok(Number(row.memoryBytes) > 0, r.stdout);
        assert.ok(Number(row.cpuPct) > 0, r.stdout);
      }
    } finally {
      await server.kiln.kill(id).catch(() => {});
      await server.close(500);
    }
  });
});

describe("kiln on an existing sandbox (virtual tier)", () => {
  const dir = suiteDataDir();
  let id = "";

  before(async () => {
    const r = await kiln(dir(), ["create"]);
    assertExit(r, 0);
    assert.match(r.stdout, /^sb_[a-z0-9]{20}\n$/, show(r));
    id = r.stdout.trim();
  });

  test("create --json prints the sandbox's record; rm removes it (ls no longer shows it, exec fails)", async () => {
    const r = await kiln(dir(), ["create", "--json", "-e", "A=1", "-l", "team=cli", "-w", "/tmp"]);
    assertExit(r, 0);
    assert.equal(r.stderr, "");
    const info = JSON.parse(r.stdout) as Record<string, unknown>;
    assert.match(String(info.id), /^sb_[a-z0-9]{20}$/);
    const other = info.id as string;
    assert.equal(info.tier, "virtual");
    assert.equal(info.template, "default");
    assert.equal(info.state, "running");
    assert.deepEqual(info.env, { A: "1" });
    assert.deepEqual(info.metadata, { team: "cli" });
    assert.equal(info.cwd, "/tmp");
    assert.equal(info.expiresAt, null);
    assert.ok(!Number.isNaN(Date.parse(String(info.createdAt))), "createdAt is not a date");
    assert.equal(typeof (info.limits as { timeoutMs?: unknown }).timeoutMs, "number");

    const rm = await kiln(dir(), ["rm", other]);
    assertExit(rm, 0);
    assert.equal(rm.stdout, `${other}\n`);
    const ls = await kiln(dir(), ["ls"]);
    assertExit(ls, 0);
    assert.ok(!ls.stdout.includes(other), `ls still shows the removed sandbox:\n${ls.stdout}`);
    assert.ok(ls.stdout.includes(id), `ls lost the other sandbox:\n${ls.stdout}`);
    const exec = await kiln(dir(), ["exec", other, "--", "true"]);
    assert.match(oneErrorLine(exec, 1), new RegExp(`^kiln: not_found: .*${other}`));
  });

  test("exec streams stdout and stderr separately and passes the exit code", async () => {
    const r = await kiln(dir(), ["exec", id, "--", "echo out; echo err >&2; echo out2; exit 5"]);
    assertExit(r, 5);
    assert.equal(r.stdout, "out\nout2\n");
    assert.equal(r.stderr, "err\n");
    // Several words are one command line, quoted as needed.
    const words = await kiln(dir(), ["exec", id, "--", "printf", "%s|", "a b", "it's"]);
    assertExit(words, 0);
    assert.equal(words.stdout, "a b|it's|");
    // With --json: the command's result as one object on stdout; the exit code still passes.
    const json = await kiln(dir(), ["exec", id, "--json", "--", "echo out; echo err >&2; exit 6"]);
    assertExit(json, 6);
    assert.equal(json.stderr, "");
    const res = JSON.parse(json.stdout) as Record<string, unknown>;
    assert.equal(res.exitCode, 6);
    assert.equal(res.stdout, "out\n");
    assert.equal(res.stderr, "err\n");
  });

  test("exec -e/--env sets variables and -w/--cwd the working directory", async () => {
    const short = await kiln(dir(), [
      "exec",
      "-e",
      "K=V",
      "-e",
      "L=a=b",
      "-w",
      "/tmp",
      id,
      "--",
      'echo "$K $L $(pwd)"',
    ]);
    assertExit(short, 0);
    assert.equal(short.stdout, "V a=b /tmp\n");
    const long = await kiln(dir(), ["exec", "--env", "K=W", "--cwd", "/", id, "--", 'echo "$K $(pwd)"']);
    assertExit(long, 0);
    assert.equal(long.stdout, "W /\n");
  });

  test("piped stdin reaches the command; --no-stdin does not forward it", async () => {
    const input = "line one\nline two\n";
    const piped = await kiln(dir(), ["exec", id, "--", "cat"], { stdin: input });
    assertExit(piped, 0);
    assert.equal(piped.stdout, input);
    const counted = await kiln(dir(), ["exec", id, "--", "wc -l"], { stdin: input });
    assert.equal(counted.stdout.trim(), "2");
    const blocked = await kiln(dir(), ["exec", "--no-stdin", id, "--", "cat"], { stdin: input });
    assertExit(blocked, 0);
    assert.equal(blocked.stdout, "");
  });

  test("ls prints a table, ls --json the records", async () => {
    const table = await kiln(dir(), ["ls"]);
    assertExit(table, 0);
    const lines = table.stdout.trimEnd().split("\n");
    assert.match(lines[0]!, /^ID\s+TIER\s+TEMPLATE\s+STATE\s+DISK\s+CREATED\s+EXPIRES\s+LABELS\s*$/);
    const row = lines.find((l) => l.startsWith(id));
    assert.ok(row, `no row for ${id}:\n${table.stdout}`);
    assert.match(
      row,
      /^sb_\w+\s+virtual\s+default\s+running\s+\d+(\.\d)? [KMG]iB\s+\d+[smhd] ago\s+never\s*$/,
    );

    const json = await kiln(dir(), ["ls", "--json"]);
    assertExit(json, 0);
    const list = JSON.parse(json.stdout) as { id: string; tier: string; state: string }[];
    const mine = list.find((s) => s.id === id);
    assert.ok(mine, `ls --json lacks ${id}`);
    assert.equal(mine.tier, "virtual");
    assert.equal(mine.state, "running");
    assert.deepEqual(
      idsOf(json).sort(),
      lines
        .slice(1)
        .map((l) => l.split(/\s+/)[0]!)
        .sort(),
      "the table and the JSON list different sandboxes",
    );
  });

  test("inspect --json shows the record and resource use", async () => {
    const r = await kiln(dir(), ["inspect", id, "--json"]);
    assertExit(r, 0);
    const info = JSON.parse(r.stdout) as Record<string, unknown> & { stats: Record<string, unknown> };
    assert.equal(info.id, id);
    assert.equal(info.tier, "virtual");
    assert.equal(info.state, "running");
    assert.equal(info.cwd, "/workspace");
    assert.equal(typeof info.stats.diskBytes, "number");
  });

  test("logs --json shows the commands run, with their exit codes", async () => {
    assertExit(await kiln(dir(), ["exec", id, "--", "sh", "-c", "exit 4"]), 4);
    assertExit(await kiln(dir(), ["exec", "-w", "/tmp", id, "--", "echo logged"]), 0);
    const r = await kiln(dir(), ["logs", id, "--json"]);
    assertExit(r, 0);
    const log = JSON.parse(r.stdout) as { id: number; command: string; exitCode: number; cwd: string }[];
    assert.ok(log.length >= 2, r.stdout);
    const [a, b] = log.slice(-2);
    assert.deepEqual(
      { command: a!.command, exitCode: a!.exitCode },
      { command: "sh -c 'exit 4'", exitCode: 4 },
    );
    assert.deepEqual(
      { command: b!.command, exitCode: b!.exitCode, cwd: b!.cwd },
      { command: "echo logged", exitCode: 0, cwd: "/tmp" },
    );
    assert.ok(b!.id > a!.id, "log entries are not in order");
  });

  test("cp copies a binary file into the sandbox and back byte for byte", async () => {
    const host = mkdtempSync(join(tmpdir(), "kiln-cli-cp-"));
    try {
      const all = Buffer.alloc(256);
      for (let i = 0; i < 256; i++) all[i] = i;
      const data = Buffer.concat([all, randomBytes(64 * 1024), Buffer.from("\r\n\0")]);
      writeFileSync(join(host, "in.bin"), data);

      const put = await kiln(dir(), ["cp", join(host, "in.bin"), `${id}:/workspace/f`]);
      assertExit(put, 0);
      assert.equal(put.stderr, "");
      const check = await kiln(dir(), ["exec", id, "--", "wc -c < /workspace/f; sha256sum /workspace/f"]);
      assertExit(check, 0);
      assert.equal(check.stdout, `${data.length}\n${sha256(data)}  /workspace/f\n`);

      const get = await kiln(dir(), ["cp", `${id}:/workspace/f`, join(host, "out.bin")]);
      assertExit(get, 0);
      assert.ok(readFileSync(join(host, "out.bin")).equals(data), "the file came back changed");
    } finally {
      rmSync(host, { recursive: true, force: true });
    }
  });

  test("cp copies a directory in (into an existing directory) and out (into a new or an existing directory)", async () => {
    const host = mkdtempSync(join(tmpdir(), "kiln-cli-cp-"));
    try {
      const src = join(host, "tree");
      mkdirSync(join(src, "sub", "deeper"), { recursive: true });
      writeFileSync(join(src, "a.txt"), "alpha\n");
      writeFileSync(join(src, "sub", "b.bin"), randomBytes(4096));
      writeFileSync(join(src, "sub", "deeper", "c.txt"), "gamma\n");
      const want = tree(src);

      // Into an existing sandbox directory: lands under its base name, like docker cp.
      assertExit(await kiln(dir(), ["cp", src, `${id}:/workspace`]), 0);
      const check = await kiln(dir(), [
        "exec",
        id,
        "--",
        "cat /workspace/tree/a.txt /workspace/tree/sub/deeper/c.txt",
      ]);
      assertExit(check, 0);
      assert.equal(check.stdout, "alpha\ngamma\n");

      // Out to a host path that does not exist: the directory is created with the contents.
      assertExit(await kiln(dir(), ["cp", `${id}:/workspace/tree`, join(host, "fresh")]), 0);
      assert.deepEqual(tree(join(host, "fresh")), want);

      // Out into an existing host directory: lands under its base name.
      mkdirSync(join(host, "existing"));
      assertExit(await kiln(dir(), ["cp", `${id}:/workspace/tree`, join(host, "existing")]), 0);
      assert.deepEqual(tree(join(host, "existing", "tree")), want);
    } finally {
      rmSync(host, { recursive: true, force: true });
    }
  });

  test("shell with piped lines: cwd and exported variables carry over; exit ends it", async () => {
    const r = await kiln(dir(), ["shell", id], {
      stdin: 'cd /tmp\nexport X=1\necho "$X $(pwd)"\nexit\necho after-exit\n',
    });
    assertExit(r, 0);
    assert.equal(r.stderr, "");
    assert.ok(r.stdout.includes("1 /tmp\n"), `the variable or the cwd did not carry over:\n${r.stdout}`);
    assert.ok(!r.stdout.includes("after-exit"), `a line after exit ran:\n${r.stdout}`);
  });

  test("move to the same tier works; to an unavailable tier it fails in one line and the sandbox keeps working", async (t) => {
    assertExit(await kiln(dir(), ["exec", id, "--", "echo kept > /workspace/moved.txt"]), 0);
    const same = await kiln(dir(), ["move", id, "--tier", "virtual"]);
    assertExit(same, 0);
    assert.equal(same.stdout, `${id} moved to virtual\n`);

    const down = (await tierStatuses(dir())).find((s) => !s.available);
    if (!down) {
      t.skip("every tier is available here; no unavailable tier to move to");
      return;
    }
    const line = oneErrorLine(await kiln(dir(), ["move", id, "--tier", down.tier]), 1);
    assert.equal(line, `kiln: tier_unavailable: tier ${down.tier} is unavailable: ${down.reason}`);
    const json = await kiln(dir(), ["move", id, "--tier", down.tier, "--json"]);
    assert.deepEqual(JSON.parse(oneErrorLine(json, 1)), {
      error: {
        code: "tier_unavailable",
        message: `tier ${down.tier} is unavailable: ${down.reason}`,
        tier: down.tier,
        reason: down.reason,
      },
    });

    const later = await kiln(dir(), ["exec", id, "--", "cat /workspace/moved.txt"]);
    assertExit(later, 0);
    assert.equal(later.stdout, "kept\n");
    const info = JSON.parse((await kiln(dir(), ["inspect", id])).stdout) as { tier: string; state: string };
    assert.deepEqual({ tier: info.tier, state: info.state }, { tier: "virtual", state: "running" });
  });

  describe("errors are one line naming the problem (one JSON object with --json), no stack trace", () => {
    const unknown = `sb_${"0".repeat(20)}`;
    const cases: { name: string; args: () => string[]; code: number; error: string; names: string }[] = [
      {
        name: "an unknown sandbox id",
        args: () => ["exec", unknown, "--", "true"],
        code: 1,
        error: "not_found",
        names: unknown,
      },
      {
        name: "a malformed sandbox id",
        args: () => ["exec", "not-an-id", "--", "true"],
        code: 2,
        error: "invalid_argument",
        names: '"not-an-id"',
      },
      {
        name: "an unknown tier",
        args: () => ["run", "--tier", "bogus", "--", "true"],
        code: 2,
        error: "invalid_argument",
        names: '"bogus"',
      },
      {
        name: "no command after --",
        args: () => ["exec", id, "--"],
        code: 2,
        error: "invalid_argument",
        names: "no command",
      },
    ];
    for (const c of cases) {
      test(c.name, async () => {
        const json = await kiln(dir(), ["--json", ...c.args()]);
        const err = (JSON.parse(oneErrorLine(json, c.code)) as { error: { code: string; message: string } })
          .error;
        assert.equal(err.code, c.error);
        assert.ok(err.message.includes(c.names), `the message does not name ${c.names}: ${err.message}`);
        const text = await kiln(dir(), c.args());
        assert.equal(oneErrorLine(text, c.code), `kiln: ${err.code}: ${err.message}`);
      });
    }

    test("usage errors in a subcommand: one line, exit 2, in text and JSON", async () => {
      const r = await kiln(dir(), ["run", "--"]);
      assert.equal(
        oneErrorLine(r, 2),
        "kiln: invalid_argument: missing required argument 'command' (see kiln run --help)",
      );
      const j = await kiln(dir(), ["--json", "ls", "--bogus"]);
      assert.deepEqual(JSON.parse(oneErrorLine(j, 2)), {
        error: { code: "invalid_argument", message: "unknown option '--bogus' (see kiln ls --help)" },
      });
    });
  });
});
