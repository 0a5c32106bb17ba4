/**
 * Warm sandboxes on the real-binary tiers: `create` hands out a pre-started
 * sandbox that behaves like a fresh one; warm sandboxes are invisible until
 * then; `close` stops them; and the warm sandboxes of a process killed
 * outright are destroyed by the next Kiln (no process, mount, cgroup or
 * directory left).
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { Kiln, type TierName } from "../src/index.ts";
import { importImage } from "../src/templates/oci-import.ts";
import { defaultTemplateDir, TemplateStore } from "../src/templates/template-store.ts";
import { dockerSaveTar, writeTo } from "../src/templates/test-images.ts";
import { tierRequired } from "./conformance/suite.ts";
import { mountsUnder, processesMentioning } from "./host-state.ts";

const template = process.env.KILN_TEST_TEMPLATE ?? "default";
const TIERS: TierName[] = ["namespace", "oci", "gvisor", "microvm"];

const CHILD = `
import { Kiln } from ${JSON.stringify(join(import.meta.dirname, "..", "src", "index.ts"))};
const kiln = await Kiln.open({ dataDir: process.argv[1], warmPool: 1 });
const n = await kiln.prewarm({ tier: process.argv[2], template: process.argv[3] });
process.stdout.write("warm " + n + "\\n");
setInterval(() => {}, 1000);
`;

describe("warm sandboxes", () => {
  const ready = new Map<TierName, string | true>();

  before(async () => {
    const dir = mkdtempSync(join(tmpdir(), "kiln-warm-doctor-"));
    const kiln = await Kiln.open({ dataDir: dir });
    for (const s of await kiln.doctor()) ready.set(s.tier, s.available ? true : s.reason);
    await kiln.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const dirs: string[] = [];
  after(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  /** True (after skipping `t` with the reason) when `tier` cannot run here; fails when it is required. */
  const skipped = (tier: TierName, t: { skip(m: string): void }): boolean => {
    const status = ready.get(tier);
    if (status === true) return false;
    if (tierRequired(tier)) assert.fail(`tier ${tier} required but unavailable: ${status}`);
    t.skip(`tier ${tier} unavailable: ${status}`);
    return true;
  };

  /** A fresh data directory, removed after the suite. */
  const freshDir = (): string => {
    const d = mkdtempSync(join(tmpdir(), "kiln-warm-"));
    dirs.push(d);
    return d;
  };

  test("a warm pool size that is not an integer from 0 to 64 is invalid_argument", async () => {
    const dataDir = freshDir();
    for (const warmPool of [-1, 1.5, 65, Number.NaN]) {
      await assert.rejects(Kiln.open({ dataDir, warmPool }), { code: "invalid_argument" });
    }
  });

  test("the virtual tier keeps no warm sandboxes (its create is already in-process)", async () => {
    const dataDir = freshDir();
    const kiln = await Kiln.open({ dataDir, warmPool: 2 });
    try {
      assert.equal(await kiln.prewarm({ tier: "virtual" }), 0);
      const sb = await kiln.create({ tier: "virtual" });
      assert.equal(await kiln.warmed(), 0);
      assert.deepEqual(readdirSync(join(dataDir, "sandboxes")), [sb.id]);
    } finally {
      await kiln.close();
    }
  });

  test("a warm sandbox is not handed out once its template's name points at other content", async (t) => {
    if (skipped("namespace", t)) return;
    const dataDir = freshDir();
    const store = new TemplateStore(defaultTemplateDir(dataDir));
    const name = `kiln-warm-test-${process.pid}`;
    await store.tag(name, (await store.get(template)).digest);
    const kiln = await Kiln.open({ dataDir, warmPool: 1 });
    try {
      assert.equal(await kiln.prewarm({ tier: "namespace", template: name }), 1);
      const [warmId] = readdirSync(join(dataDir, "sandboxes"));
      // Another process rebuilds the template: the name now points at a tiny image.
      const dirsOnly = ["proc", "dev", "tmp", "workspace"].map((d) => ({
        name: `${d}/`,
        type: "directory" as const,
      }));
      const tar = writeTo(join(dataDir, "tiny.tar"), await dockerSaveTar([dirsOnly]));
      const tiny = await importImage(store, `${name}-b`, tar);
      await store.tag(name, tiny.digest, { replace: true });
      const sb = await kiln.create({ tier: "namespace", template: name });
      assert.notEqual(sb.id, warmId, "create took a sandbox of the template's old content");
      assert.equal(
        await sb.files.exists("/etc/debian_version"),
        false,
        "the sandbox is not on the new content",
      );
      await sb.kill();
    } finally {
      await kiln.close();
      await store.remove(name).catch(() => {});
      await store.remove(`${name}-b`).catch(() => {});
    }
    assert.deepEqual(readdirSync(join(dataDir, "sandboxes")), []);
  });

  test("creates that fail (an unknown template) do not push the shapes in use out of the pool", async (t) => {
    if (skipped("namespace", t)) return;
    const dataDir = freshDir();
    const kiln = await Kiln.open({ dataDir, warmPool: 1 });
    try {
      assert.equal(await kiln.prewarm({ tier: "namespace", template }), 1);
      const [warmId] = readdirSync(join(dataDir, "sandboxes"));
      for (const name of ["no-such-a", "no-such-b", "no-such-c"]) {
        await assert.rejects(kiln.create({ tier: "namespace", template: name }), { code: "not_found" });
      }
      assert.equal(await kiln.warmed(), 1, "the warm sandbox was discarded");
      assert.equal((await kiln.create({ tier: "namespace", template })).id, warmId);
    } finally {
      await kiln.close();
    }
  });

  for (const tier of TIERS) {
    test(`${tier}: create takes a warm sandbox, which behaves like a fresh one`, async (t) => {
      if (skipped(tier, t)) return;
      const dataDir = freshDir();
      const kiln = await Kiln.open({ dataDir, warmPool: 1 });
      try {
        assert.equal(await kiln.prewarm({ tier, template }), 1);
        const [warmId] = readdirSync(join(dataDir, "sandboxes"));
        assert.ok(warmId, "no warm sandbox on disk");
        assert.deepEqual(await kiln.list(), [], "a warm sandbox is listed");
        await assert.rejects(kiln.connect(warmId), { code: "not_found" });

        const sb = await kiln.create({
          tier,
          template,
          env: { GREETING: "hello" },
          metadata: { who: "test" },
        });
        assert.equal(sb.id, warmId, "create did not take the warm sandbox");
        assert.equal(existsSync(join(dataDir, "sandboxes", sb.id, "warm.json")), false);
        const r = await sb.commands.run('echo "$GREETING from $(pwd)"; ls -A /workspace | wc -l');
        assert.equal(r.stdout, "hello from /workspace\n0\n");
        await sb.files.write("/workspace/a.txt", "kept");
        assert.equal(await sb.files.read("/workspace/a.txt"), "kept");
        assert.deepEqual(
          (await kiln.list()).map((i) => [i.id, i.metadata.who]),
          [[sb.id, "test"]],
        );
        assert.equal((await sb.logs()).length, 1, "the audit log is the sandbox's own");

        // The pool refills; a create of another shape does not take it.
        assert.equal(await kiln.warmed(), 1);
        const other = await kiln.create({ tier, template, limits: { pids: 77 } });
        assert.notEqual(other.id, warmId);
        await other.kill();
        await sb.kill();
      } finally {
        await kiln.close();
      }
      // Closing stopped the warm sandboxes: nothing is left of them.
      assert.deepEqual(readdirSync(join(dataDir, "sandboxes")), []);
      assert.deepEqual(mountsUnder(dataDir), []);
      assert.deepEqual(processesMentioning(dataDir), []);
    });

    test(`${tier}: the warm sandboxes of a killed process are destroyed by the next Kiln`, async (t) => {
      if (skipped(tier, t)) return;
      const dataDir = freshDir();
      const child = spawn(process.execPath, ["--input-type=module", "-e", CHILD, dataDir, tier, template], {
        stdio: ["ignore", "pipe", "inherit"],
      });
      const line = await new Promise<string>((resolve, reject) => {
        let buf = "";
        child.stdout.on("data", (d) => {
          buf += d;
          if (buf.includes("\n")) resolve(buf.trim());
        });
        child.once("exit", (code) => reject(new Error(`child exited early (${code})`)));
      });
      assert.equal(line, "warm 1");
      const [id] = readdirSync(join(dataDir, "sandboxes"));
      assert.ok(id);
      child.kill("SIGKILL");
      await new Promise((r) => child.once("exit", r));
      for (let i = 0; i < 100 && processesMentioning(dataDir).length > 0; i++)
        await new Promise((r) => setTimeout(r, 50));
      assert.deepEqual(processesMentioning(dataDir), [], "the warm sandbox outlived its process");

      const kiln = await Kiln.open({ dataDir });
      await kiln.close();
      assert.deepEqual(readdirSync(join(dataDir, "sandboxes")), [], "the warm sandbox's directory is left");
      assert.deepEqual(mountsUnder(dataDir), [], "a mount is left");
      for (const c of ["memory", "pids", "cpu"]) {
        assert.equal(existsSync(`/sys/fs/cgroup/${c}/kiln/${id}`), false, `cgroup ${c} is left`);
      }
    });
  }
});
