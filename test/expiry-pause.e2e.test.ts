/**
 * The end of a sandbox's lifetime as a pause: `onExpiry: "pause"` keeps
 * memory and processes where the tier can (gVisor, microvm), `"pause-files"` keeps the
 * files only, even there; E2B's `lifecycle.onTimeout: { action: "pause",
 * keepMemory: false }` (the SDK sends `autoPauseMemory: false`) is the latter.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { Sandbox } from "e2b";
import { Kiln, type Sandbox as KilnSandbox } from "../src/index.ts";
import { rejectsWithCode, tierRequired } from "./conformance/suite.ts";
import { e2bFixture } from "./e2b/suite.ts";

let root: string;
before(() => {
  root = mkdtempSync(join(tmpdir(), "kiln-expiry-pause-"));
});
after(() => rmSync(root, { recursive: true, force: true }));

/** Polls until `f` is true (a safety net of 120 s: the lifetime's timer, then a pause, on a loaded machine). */
async function until(what: string, f: () => Promise<boolean>, now?: () => string): Promise<void> {
  const deadline = Date.now() + 120_000;
  while (!(await f())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}${now ? ` (${now()})` : ""}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

test("bad onExpiry values are refused", async () => {
  const kiln = await Kiln.open({ dataDir: join(root, "input") });
  try {
    await rejectsWithCode(kiln.create({ onExpiry: "sleep" as never }), "invalid_argument");
    await rejectsWithCode(kiln.create({ onExpiry: "pause", onTimeout: "pause-files" }), "invalid_argument");
  } finally {
    await kiln.close();
  }
});

for (const tier of ["gvisor", "microvm"] as const) {
  test(`${tier}: at expiry, pause keeps the process and pause-files keeps only the files`, async (t) => {
    const kiln = await Kiln.open({ dataDir: join(root, tier) });
    try {
      const status = (await kiln.doctor()).find((s) => s.tier === tier)!;
      if (!status.available) {
        if (tierRequired(tier)) assert.fail(`tier ${tier} required but unavailable: ${status.reason}`);
        return t.skip(`tier ${tier} unavailable: ${status.reason}`);
      }
      const start = async (onExpiry: "pause" | "pause-files"): Promise<KilnSandbox> => {
        const sb = await kiln.create({ tier, onExpiry });
        await sb.files.write("/workspace/kept.txt", onExpiry);
        await sb.commands.run("nohup sleep 100000 >/dev/null 2>&1 &");
        // The lifetime starts once the process runs, so that the pause finds it.
        await sb.setLifetime(1000);
        return sb;
      };
      const [memory, files] = await Promise.all([start("pause"), start("pause-files")]);
      for (const sb of [memory, files])
        await until(
          `${sb.id} paused at expiry`,
          async () => kiln.record(sb.id).state === "paused",
          () => `state ${kiln.record(sb.id).state}, expiry ${kiln.record(sb.id).expiresAt ?? "none"}`,
        );
      const sleeping = async (sb: KilnSandbox) =>
        (
          await sb.commands.run(
            "for p in /proc/[0-9]*; do cat $p/cmdline 2>/dev/null | tr '\\0' ' '; echo; done",
          )
        ).stdout
          .split("\n")
          .some((l) => l.startsWith("sleep 100000"));
      // Any call resumes each; what came back differs.
      assert.equal(await sleeping(memory), true, "pause kept the process");
      assert.equal(await sleeping(files), false, "pause-files kept only the files");
      assert.equal(await files.files.read("/workspace/kept.txt"), "pause-files");
      assert.equal(await memory.files.read("/workspace/kept.txt"), "pause");
      await Promise.all([memory.kill(), files.kill()]);
    } finally {
      await kiln.close();
    }
  });
}

test("E2B: lifecycle.onTimeout { action: pause, keepMemory: false } is a files-only pause at expiry", async () => {
  const f = await e2bFixture("virtual");
  try {
    const sbx = await Sandbox.create({
      ...f.opts(),
      timeoutMs: 1000,
      lifecycle: { onTimeout: { action: "pause", keepMemory: false } },
    });
    const store = (f.kiln as unknown as { stateStore: { lifecycle(id: string): { onTimeout: string } } })
      .stateStore;
    assert.equal(store.lifecycle(sbx.sandboxId).onTimeout, "pause-files");
    assert.deepEqual((await Sandbox.getInfo(sbx.sandboxId, f.opts())).lifecycle, {
      onTimeout: "pause",
      autoResume: true,
    });
    await until(
      "paused at expiry",
      async () => (await Sandbox.getInfo(sbx.sandboxId, f.opts())).state === "paused",
    );
    await Sandbox.kill(sbx.sandboxId, f.opts());
  } finally {
    await f.dispose();
  }
});
