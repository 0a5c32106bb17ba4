/**
 * Template builds never surprise: a create whose template is missing fails at
 * once with `not_found` naming the command that builds it (library, CLI, REST
 * and the E2B API), and only a create that asks (`buildTemplate`, `kiln create
 * --build-template`) builds it, reporting progress. Runs on the namespace
 * tier with a template store of its own (KILN_TEMPLATE_DIR, set for this
 * process and its children only); skipped with the reason where that tier
 * cannot run, failed instead when KILN_REQUIRE_TIERS names it.
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { Sandbox as E2bSandbox, SandboxError } from "e2b";
import { Kiln } from "../src/index.ts";
import { startServer } from "../src/server/index.ts";
import { DEFAULT_PACKAGES, DEFAULT_SUITE, recipeDigest, TemplateStore } from "../src/templates/index.ts";
import { kiln as runKiln } from "./cli-run.ts";
import { rejectsWithCode, tierRequired } from "./conformance/suite.ts";

const shared = process.env.KILN_TEMPLATE_DIR;
const scratch = mkdtempSync(join(tmpdir(), "kiln-tpl-demand-"));
const emptyStore = join(scratch, "empty-store");
let unavailable: string | undefined;

before(async () => {
  mkdirSync(emptyStore);
  process.env.KILN_TEMPLATE_DIR = emptyStore;
  const probe = await Kiln.open({ dataDir: join(scratch, "probe") });
  const status = (await probe.doctor()).find((s) => s.tier === "namespace");
  await probe.close();
  if (!status?.available) {
    unavailable = `the namespace tier cannot run here: ${status?.reason ?? "no backend"}`;
    if (tierRequired("namespace")) throw new Error(`${unavailable} (required by KILN_REQUIRE_TIERS)`);
    console.log(`# SKIP ${unavailable}`);
  }
});

after(() => {
  if (shared === undefined) delete process.env.KILN_TEMPLATE_DIR;
  else process.env.KILN_TEMPLATE_DIR = shared;
  rmSync(scratch, { recursive: true, force: true });
});

test("library: a missing template is not_found at once, nothing is built, and no sandbox is left", async (t) => {
  if (unavailable) return t.skip(unavailable);
  const kiln = await Kiln.open({ dataDir: join(scratch, "lib") });
  try {
    for (const template of ["default", "code-interpreter", "no-such-template"]) {
      await rejectsWithCode(kiln.create({ tier: "namespace", template }), "not_found");
    }
    // A name Kiln has no recipe for is not built even when asked.
    await rejectsWithCode(
      kiln.create({ tier: "namespace", template: "no-such-template", buildTemplate: {} }),
      "not_found",
    );
    assert.deepEqual(await kiln.list(), []);
    assert.deepEqual(await new TemplateStore(emptyStore).list(), [], "no build was started");
  } finally {
    await kiln.close();
  }
});

test("CLI: without --build-template the error names the command that builds the template", async (t) => {
  if (unavailable) return t.skip(unavailable);
  const r = await runKiln(join(scratch, "cli"), ["create", "--tier", "namespace"], { guardMs: 60_000 });
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /^kiln: not_found: /);
  assert.ok(r.stderr.includes("kiln template build default"), r.stderr);
});

test("REST and the E2B API: not_found at once, not a build behind a client that times out", async (t) => {
  if (unavailable) return t.skip(unavailable);
  const server = await startServer({
    dataDir: join(scratch, "srv"),
    port: 0,
    graceMs: 1000,
    e2bTier: "namespace",
  });
  try {
    const { key } = server.keys.create({ name: "t" });
    const res = await fetch(`${server.url}/v1/sandboxes`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: JSON.stringify({ tier: "namespace" }),
    });
    assert.equal(res.status, 404);
    assert.equal(((await res.json()) as { error: { code: string } }).error.code, "not_found");
    // The SDK's default template; its request timeout is far above what the answer takes.
    const opts = { apiUrl: server.url, sandboxUrl: server.url, apiKey: key, requestTimeoutMs: 60_000 };
    await assert.rejects(E2bSandbox.create(opts), (e: Error) => {
      assert.ok(e instanceof SandboxError);
      assert.match(e.message, /^404\b/);
      assert.ok(e.message.includes("kiln template build default"), e.message);
      return true;
    });
  } finally {
    await server.close(1000);
  }
});

test("CLI --build-template builds the missing default, drawing its progress, then creates", async (t) => {
  if (unavailable) return t.skip(unavailable);
  // A store that already holds the default recipe's blob under no name (as after a build of it
  // by another name), so the asked-for build completes at once instead of running debootstrap.
  const digest = shared ? new TemplateStore(shared).digestOf("default") : undefined;
  if (!digest || digest !== recipeDigest(DEFAULT_SUITE, DEFAULT_PACKAGES)) {
    return t.skip("needs KILN_TEMPLATE_DIR with the default template built from its current recipe");
  }
  const seeded = join(scratch, "seeded-store");
  mkdirSync(join(seeded, "blobs"), { recursive: true });
  const hex = digest.replace(/^sha256:/, "");
  symlinkSync(new TemplateStore(shared).blobDir(hex), join(seeded, "blobs", hex));
  process.env.KILN_TEMPLATE_DIR = seeded;
  try {
    const dir = join(scratch, "cli-build");
    const r = await runKiln(dir, ["create", "--tier", "namespace", "--build-template"], { guardMs: 120_000 });
    assert.equal(r.code, 0, r.stderr);
    // Not a terminal: one plain line per step of the build on stderr.
    assert.match(r.stderr, /^100% already built$/m);
    const id = r.stdout.trim();
    assert.match(id, /^sb_[a-z0-9]{20}$/);
    assert.equal((await new TemplateStore(seeded).digestOf("default")) ?? "", digest);
    // The default template's root (a Debian system), and the sandbox's own hostname bound over its /etc/hostname.
    const ran = await runKiln(
      dir,
      ["exec", id, "--", "sh", "-c", "grep -c ^ID=debian /etc/os-release; cat /etc/hostname"],
      {
        guardMs: 60_000,
      },
    );
    assert.equal(ran.stdout, `1\n${id.replace(/_/g, "-")}\n`, ran.stderr);
    assert.equal((await runKiln(dir, ["rm", id], { guardMs: 60_000 })).code, 0);
  } finally {
    process.env.KILN_TEMPLATE_DIR = emptyStore;
  }
});
