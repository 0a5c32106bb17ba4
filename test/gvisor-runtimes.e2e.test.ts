/**
 * gVisor's runsc builds: doctor names the build and platform in use, and a memory pause is
 * restored only by the build that took it (a Kiln that runs another build refuses the resume
 * with tier_unavailable and keeps the sandbox paused).
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { Kiln } from "../src/index.ts";
import { rejectsWithCode, tierRequired } from "./conformance/suite.ts";

let dataDir: string;
before(() => {
  dataDir = mkdtempSync(join(tmpdir(), "kiln-gvisor-runtimes-"));
});
after(() => rmSync(dataDir, { recursive: true, force: true }));

/** A Kiln whose gvisor backend runs only the `platform` build (KILN_GVISOR_PLATFORM, read when the backend is made). */
async function openWith(platform: "systrap" | "ptrace" | undefined): Promise<Kiln> {
  const before = process.env.KILN_GVISOR_PLATFORM;
  if (platform) process.env.KILN_GVISOR_PLATFORM = platform;
  else delete process.env.KILN_GVISOR_PLATFORM;
  try {
    const kiln = await Kiln.open({ dataDir });
    await kiln.backend("gvisor");
    return kiln;
  } finally {
    if (before === undefined) delete process.env.KILN_GVISOR_PLATFORM;
    else process.env.KILN_GVISOR_PLATFORM = before;
  }
}

async function gvisorStatus(kiln: Kiln) {
  return (await kiln.doctor()).find((s) => s.tier === "gvisor")!;
}

test("doctor names the runsc version and its platform", async (t) => {
  const kiln = await openWith(undefined);
  try {
    const s = await gvisorStatus(kiln);
    if (!s.available) {
      if (tierRequired("gvisor")) assert.fail(`tier gvisor required but unavailable: ${s.reason}`);
      return t.skip(`tier gvisor unavailable: ${s.reason}`);
    }
    assert.match(s.reason, /^runsc version \S+, platform (systrap|ptrace), /);
  } finally {
    await kiln.close();
  }
});

test("a memory pause taken on one runsc build is not restored by another", async (t) => {
  const systrap = await openWith("systrap");
  const ptrace = await openWith("ptrace");
  let id: string;
  let pid: string;
  try {
    const [s, p] = [await gvisorStatus(systrap), await gvisorStatus(ptrace)];
    if (!s.available || !p.available) {
      const why = `needs both builds: systrap: ${s.reason}; ptrace: ${p.reason}`;
      return t.skip(why);
    }
    assert.notEqual(s.reason.split(",")[0], p.reason.split(",")[0], "the two builds are different versions");
    const sb = await systrap.create({ tier: "gvisor" });
    id = sb.id;
    // What only a memory pause keeps: a running process.
    pid = (await sb.commands.run("nohup sleep 100000 >/dev/null 2>&1 & echo $!")).stdout.trim();
    await sb.pause();
  } finally {
    await systrap.close();
    await ptrace.close();
  }
  const other = await openWith("ptrace");
  try {
    await rejectsWithCode(other.resume(id), "tier_unavailable");
    assert.equal((await other.connect(id).then((sb) => sb.info())).state, "paused");
  } finally {
    await other.close();
  }
  const same = await openWith(undefined);
  try {
    const sb = await same.resume(id);
    assert.equal((await sb.commands.run(`kill -0 ${pid} && echo running`)).stdout, "running\n");
    await sb.kill();
  } finally {
    await same.close();
  }
});
