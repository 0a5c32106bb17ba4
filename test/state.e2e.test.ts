/**
 * Sandbox state across a killed Kiln process. A sandbox holding a Python
 * process with state (a server counting its requests) and a file is paused,
 * and its Kiln is killed with SIGKILL: a new Kiln resumes it with its files on
 * every tier, and with the process and its state on the tiers whose `pause`
 * capability is `memory` (gVisor, microvm). A Kiln killed at an arbitrary moment of a
 * pause or of a resume leaves the next Kiln a sandbox that is paused or
 * running, whole (its files intact, its pause record neither half-written
 * nor stuck, no partial image left), and usable. Runs on every tier that
 * can run here.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { Kiln, type Sandbox, TIER_NAMES, type TierName } from "../src/index.ts";
import { tierRequired } from "./conformance/suite.ts";
import { mountsUnder } from "./host-state.ts";

const template = process.env.KILN_TEST_TEMPLATE ?? "default";

/** A Python server that counts its requests: a process whose answer shows whether its memory survived. */
const COUNTER = [
  "import http.server as h",
  "n = [0]",
  "class H(h.BaseHTTPRequestHandler):",
  "    def do_GET(self):",
  "        n[0] += 1",
  "        self.send_response(200); self.end_headers(); self.wfile.write(str(n[0]).encode())",
  "    def log_message(self, *a): pass",
  "h.HTTPServer(('127.0.0.1', 8765), H).serve_forever()",
].join("\n");
const ASK = `python3 -c "import urllib.request as u; print(u.urlopen('http://127.0.0.1:8765/', timeout=10).read().decode())"`;

/**
 * The child Kiln: creates a sandbox with a file (and, on a real tier, the counting server asked
 * once), prints its id, then `pause`s, or `pause`s and `resume`s, printing each step.
 */
const CHILD = `
import { Kiln } from ${JSON.stringify(join(import.meta.dirname, "..", "src", "index.ts"))};
const [dataDir, tier, template, mode] = process.argv.slice(1);
const kiln = await Kiln.open({ dataDir });
const sb = await kiln.create({ tier, template });
await sb.files.write("/workspace/kept.txt", "written before the crash");
const caps = (await kiln.backend(tier)).capabilities;
if (caps.realBinaries) {
  await sb.files.write("/workspace/counter.py", ${JSON.stringify(COUNTER)});
  await sb.commands.run("nohup python3 /workspace/counter.py >/dev/null 2>&1 &");
  let ok = false;
  for (let i = 0; i < 200 && !ok; i++) {
    ok = (await sb.commands.run(${JSON.stringify(ASK)})).exitCode === 0;
    if (!ok) await new Promise((r) => setTimeout(r, 100));
  }
  if (!ok) throw new Error("the counting server did not start");
}
process.stdout.write("id " + sb.id + "\\n");
process.stdout.write("pausing\\n");
await sb.pause();
process.stdout.write("paused\\n");
if (mode === "resume") {
  process.stdout.write("resuming\\n");
  await sb.resume();
  process.stdout.write("resumed\\n");
}
setInterval(() => {}, 1000);
`;

/** Starts the child; resolves with its sandbox id once it prints `line`. */
function startChild(
  dataDir: string,
  tier: TierName,
  mode: "pause" | "resume",
  line: string,
): { child: ChildProcess; id: Promise<string>; reached: Promise<void> } {
  const child = spawn(process.execPath, ["--input-type=module", "-e", CHILD, dataDir, tier, template, mode], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  let buf = "";
  const id = new Promise<string>((resolve, reject) => {
    child.stdout!.on("data", (d) => {
      buf += d;
      const m = /id (sb_[a-z0-9]{20})\n/.exec(buf);
      if (m) resolve(m[1]!);
    });
    child.once("exit", (code) => reject(new Error(`child exited early (${code})`)));
  });
  const reached = new Promise<void>((resolve, reject) => {
    child.stdout!.on("data", () => {
      if (buf.includes(`${line}\n`)) resolve();
    });
    child.once("exit", (code) => reject(new Error(`child exited early (${code})`)));
  });
  id.catch(() => {});
  reached.catch(() => {});
  return { child, id, reached };
}

async function killChild(child: ChildProcess): Promise<void> {
  if (child.exitCode === null && child.signalCode === null) {
    const gone = new Promise((r) => child.once("exit", r));
    child.kill("SIGKILL");
    await gone;
  }
}

/** The counting server's next answer, or undefined when it does not answer. */
async function ask(sb: Sandbox): Promise<number | undefined> {
  const r = await sb.commands.run(ASK);
  return r.exitCode === 0 ? Number(r.stdout.trim()) : undefined;
}

describe("sandbox state across a killed Kiln", () => {
  let root: string;
  const ready = new Map<TierName, string | true>();

  before(async () => {
    root = mkdtempSync(join(tmpdir(), "kiln-state-e2e-"));
    const kiln = await Kiln.open({ dataDir: join(root, "probe") });
    for (const s of await kiln.doctor()) ready.set(s.tier, s.available ? true : s.reason);
    await kiln.close();
  });
  after(() => {
    for (const line of mountsUnder(root)) spawnSync("umount", ["-l", line.split(" ")[4]!]);
    rmSync(root, { recursive: true, force: true });
  });

  const available = (tier: TierName, t: { skip(m: string): void }): boolean => {
    const status = ready.get(tier);
    if (status === true) return true;
    if (tierRequired(tier)) assert.fail(`tier ${tier} required but unavailable: ${status}`);
    t.skip(`tier ${tier} unavailable: ${status}`);
    return false;
  };

  for (const tier of TIER_NAMES) {
    test(`${tier}: paused, Kiln killed with SIGKILL, resumed by a new Kiln with what the tier keeps`, async (t) => {
      if (!available(tier, t)) return;
      const dataDir = join(root, `paused-${tier}`);
      const { child, id, reached } = startChild(dataDir, tier, "pause", "paused");
      const sbId = await id;
      await reached;
      await killChild(child);
      const kiln = await Kiln.open({ dataDir });
      try {
        const caps = (await kiln.backend(tier)).capabilities;
        const sb = await kiln.connect(sbId);
        assert.equal((await sb.info()).state, "paused");
        await sb.resume();
        assert.equal((await sb.info()).state, "running");
        assert.equal(await sb.files.read("/workspace/kept.txt"), "written before the crash");
        if (caps.realBinaries) {
          const n = await ask(sb);
          if (caps.pause === "memory") assert.equal(n, 2, "the Python process and its state came back");
          else assert.equal(n, undefined, "a files-only pause ends processes");
        }
        assert.equal(existsSync(join(dataDir, "sandboxes", sbId, "pause")), false, "the image was kept");
        await sb.kill();
      } finally {
        await kiln.close();
      }
    });
  }

  /** After a crash at any moment of a pause or a resume: paused or running, whole and usable. */
  const crashTest = (tier: TierName, mode: "pause" | "resume", at: string) =>
    test(`${tier}: SIGKILL during ${mode}: the next Kiln finishes or rolls it back, losing nothing`, async (t) => {
      if (!available(tier, t)) return;
      const dataDir = join(root, `crash-${mode}-${tier}`);
      const { child, id, reached } = startChild(dataDir, tier, mode, at);
      const sbId = await id;
      await reached;
      // Somewhere inside the operation (or just after it: every outcome is legitimate).
      await new Promise((r) => setTimeout(r, Math.floor(Math.random() * 400)));
      await killChild(child);
      const kiln = await Kiln.open({ dataDir });
      try {
        const caps = (await kiln.backend(tier)).capabilities;
        const sb = await kiln.connect(sbId);
        const state = (await sb.info()).state;
        assert.ok(state === "paused" || state === "running", `state ${state}`);
        const stateDir = join(dataDir, "sandboxes", sbId);
        assert.deepEqual(
          readdirSync(stateDir).filter((n) => n.startsWith(".partial-")),
          [],
          "a partial image was left",
        );
        await sb.resume();
        assert.equal((await sb.info()).state, "running");
        assert.equal(await sb.files.read("/workspace/kept.txt"), "written before the crash");
        if (caps.realBinaries) {
          // The process runs on if the pause completed and the resume had not begun; otherwise it
          // ended with the killed Kiln. Either way the sandbox answers commands.
          const n = await ask(sb);
          assert.ok(n === undefined || n === 2, `counter answered ${n}`);
        }
        assert.equal((await sb.commands.run("echo usable")).stdout, "usable\n");
        await sb.pause();
        await sb.resume();
        assert.equal(await sb.files.read("/workspace/kept.txt"), "written before the crash");
        await sb.kill();
      } finally {
        await kiln.close();
      }
    });

  for (const tier of ["virtual", "gvisor", "microvm"] as const) {
    crashTest(tier, "pause", "pausing");
    crashTest(tier, "resume", "resuming");
  }
});
