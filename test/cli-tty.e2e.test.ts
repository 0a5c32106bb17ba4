/**
 * The CLI on a terminal: `kiln exec -it` and `kiln shell` attach the caller's
 * terminal to a pty in the sandbox (its size, keystrokes, exit code). The
 * caller's terminal is made by util-linux `script`, as a user's would be.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { Kiln } from "../src/index.ts";
import { tierRequired } from "./conformance/suite.ts";

const MAIN = join(import.meta.dirname, "..", "src", "cli", "main.ts");
const template = process.env.KILN_TEST_TEMPLATE ?? "default";
let dataDir: string;
let why: string | undefined;
let id = "";

before(async () => {
  dataDir = mkdtempSync(join(tmpdir(), "kiln-cli-tty-"));
  if (spawnSync("script", ["--version"]).status !== 0) {
    why = "util-linux `script` is not installed";
    return;
  }
  const kiln = await Kiln.open({ dataDir });
  try {
    const ns = (await kiln.doctor()).find((s) => s.tier === "namespace");
    if (!ns?.available) {
      if (tierRequired("namespace"))
        throw new Error(`tier namespace required but unavailable: ${ns?.reason}`);
      why = `tier namespace unavailable: ${ns?.reason}`;
      return;
    }
    id = (await kiln.create({ tier: "namespace", template })).id;
  } finally {
    await kiln.close();
  }
});

after(async () => {
  const kiln = await Kiln.open({ dataDir });
  if (id) await kiln.kill(id).catch(() => {});
  await kiln.close();
  rmSync(dataDir, { recursive: true, force: true });
});

/**
 * Runs the CLI on a fresh terminal of `cols` x `rows`, typing `keys` once
 * `ready` shows in its output (then each next key string after the previous
 * one's echo). Resolves with everything the terminal showed and the exit code.
 */
function onTerminal(
  args: string[],
  steps: { when: string; type: string }[],
  size = { cols: 77, rows: 22 },
): Promise<{ out: string; code: number | null }> {
  const cli = [process.execPath, MAIN, "--data-dir", dataDir, ...args].map((a) => `'${a}'`).join(" ");
  const child = spawn(
    "script",
    ["-qec", `stty cols ${size.cols} rows ${size.rows}; exec ${cli}`, "/dev/null"],
    {
      stdio: ["pipe", "pipe", "inherit"],
    },
  );
  let out = "";
  let next = 0;
  child.stdout.on("data", (d) => {
    out += d;
    while (next < steps.length && out.includes(steps[next]!.when)) child.stdin.write(steps[next++]!.type);
  });
  const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
  return new Promise((resolve) =>
    child.once("exit", (code) => {
      clearTimeout(timer);
      resolve({ out, code });
    }),
  );
}

test("exec -it: the command sees a tty of the caller's size, gets keystrokes, and its exit code passes", async (t) => {
  if (why) return t.skip(why);
  const r = await onTerminal(
    ["exec", "-it", id, "--", "bash", "--norc", "-i"],
    [
      { when: "#", type: 'stty size; tty; echo "ok-$((6*7))"\r' },
      { when: "ok-42", type: "exit 4\r" },
    ],
  );
  assert.match(r.out, /22 77\r+\n\/dev\/pts\/\d+\r+\nok-42/);
  assert.equal(r.code, 4);
});

test("exec -t without -i: the command has a terminal but no keystrokes", async (t) => {
  if (why) return t.skip(why);
  const r = await onTerminal(["exec", "-t", id, "--", "test -t 1 && stty size"], []);
  assert.match(r.out, /22 77/);
  assert.equal(r.code, 0);
});

test("shell: a login bash on a real terminal where the tier has one", async (t) => {
  if (why) return t.skip(why);
  const r = await onTerminal(
    ["shell", id],
    [
      { when: "# ", type: 'cd /tmp && echo "in $(pwd) $(stty size)"\r' },
      { when: "in /tmp", type: "exit\r" },
    ],
    { cols: 100, rows: 30 },
  );
  assert.match(r.out, new RegExp(`kiln shell: ${id} \\(namespace\\)`));
  assert.match(r.out, /in \/tmp 30 100/);
  assert.equal(r.code, 0);
});
