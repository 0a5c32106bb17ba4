/**
 * debootstrap templates: the recipe digest, mirror discovery and progress
 * parsing always; a real (tiny, minbase-only) build only when debootstrap is
 * installed, we are root and Debian's archive answers. With a shared
 * `KILN_TEMPLATE_DIR` the build happens once per machine; otherwise it goes
 * into a temporary store that is removed afterwards.
 */
import assert from "node:assert/strict";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { isKilnError } from "../core/errors.ts";
import {
  build,
  DEFAULT_PACKAGES,
  DebootstrapProgress,
  debootstrapUnavailable,
  defaultMirror,
  FALLBACK_MIRROR,
  recipeDigest,
} from "./debootstrap.ts";
import { mountsUnder } from "./fs-util.ts";
import { TemplateStore } from "./template-store.ts";

async function archiveReachable(mirror: string): Promise<string | undefined> {
  try {
    const r = await fetch(`${mirror}/dists/bookworm/Release`, {
      method: "HEAD",
      signal: AbortSignal.timeout(8000),
    });
    return r.ok ? undefined : `${mirror} answered ${r.status}`;
  } catch (e) {
    return `${mirror} is unreachable: ${(e as Error).message}`;
  }
}

const mirror = defaultMirror("bookworm");
const skipReason = debootstrapUnavailable() ?? (await archiveReachable(mirror));
if (skipReason) console.log(`# skipping debootstrap build tests: ${skipReason}`);

const scratch = mkdtempSync(join(tmpdir(), "kiln-debootstrap-test-"));
after(() => rmSync(scratch, { recursive: true, force: true }));

describe("debootstrap recipe", () => {
  test("`default` without packages means the default package set", async () => {
    const store = new TemplateStore(join(scratch, "default-store"));
    const staging = await store.stagingDir("test");
    mkdirSync(join(staging, "rootfs"));
    const digest = recipeDigest("bookworm", [...DEFAULT_PACKAGES].reverse());
    await store.commit("prebuilt", staging, {
      digest,
      source: "debootstrap",
      packages: [...DEFAULT_PACKAGES],
    });
    // The recipe's blob is there, so this returns at once, without debootstrap, with that blob.
    assert.equal((await build(store, "default")).digest, digest);
    assert.equal((await store.remove("prebuilt")).blobRemoved, false);
  });

  test("the digest depends on the package set, not its order", () => {
    const a = recipeDigest("bookworm", ["python3", "bash", "bash"]);
    assert.match(a, /^sha256:[0-9a-f]{64}$/);
    assert.equal(a, recipeDigest("bookworm", ["bash", "python3"]));
    assert.notEqual(a, recipeDigest("bookworm", ["bash"]));
    assert.notEqual(a, recipeDigest("trixie", ["bash", "python3"]));
  });

  test("bad package names are invalid arguments", () => {
    for (const bad of ["-rf", "a b", "x;rm", "", "Bash"])
      assert.throws(
        () => recipeDigest("bookworm", [bad]),
        (e: unknown) => isKilnError(e, "invalid_argument"),
      );
  });

  test("the mirror comes from this machine's apt sources", () => {
    const etc = join(scratch, "apt1");
    mkdirSync(join(etc, "sources.list.d"), { recursive: true });
    assert.equal(defaultMirror("bookworm", etc), FALLBACK_MIRROR);
    writeFileSync(
      join(etc, "sources.list.d", "debian.sources"),
      [
        "Types: deb",
        "URIs: http://mirror.example/debian-security",
        "Suites: bookworm-security",
        "Components: main",
        "",
        "Types: deb deb-src",
        "# a comment",
        "URIs: http://mirror.example/debian/",
        "Suites: bookworm bookworm-updates",
        "Components: main",
      ].join("\n"),
    );
    writeFileSync(
      join(etc, "sources.list.d", "a-disabled.sources.disabled"),
      "Types: deb\nURIs: http://wrong.example/\nSuites: bookworm\n",
    );
    assert.equal(defaultMirror("bookworm", etc), "http://mirror.example/debian");
    writeFileSync(
      join(etc, "sources.list"),
      "# deb http://commented.example/ bookworm main\ndeb [arch=amd64] https://list.example/debian bookworm main\n",
    );
    assert.equal(defaultMirror("bookworm", etc), "https://list.example/debian");
    assert.equal(defaultMirror("trixie", etc), FALLBACK_MIRROR);
  });

  test("progress from debootstrap's output only goes forward", () => {
    const p = new DebootstrapProgress(2);
    const lines = [
      "I: Retrieving InRelease ",
      "I: Validating Packages ",
      "I: Resolving dependencies of required packages...",
      ...Array.from({ length: 100 }, (_, i) => [
        `I: Retrieving pkg${i} 1.0`,
        `I: Validating pkg${i} 1.0`,
      ]).flat(),
      ...Array.from({ length: 100 }, (_, i) => `I: Extracting pkg${i}...`),
      "I: Installing core packages...",
      "I: Unpacking required packages...",
      ...Array.from({ length: 100 }, (_, i) => `I: Unpacking pkg${i}...`),
      "I: Configuring required packages...",
      ...Array.from({ length: 100 }, (_, i) => `I: Configuring pkg${i}...`),
      "I: Base system installed successfully.",
      "W: something unparsed",
    ];
    let last = 0;
    const messages = new Set<string>();
    for (const l of lines) {
      const r = p.line(l);
      if (!r) continue;
      assert.ok(r.fraction >= last && r.fraction <= 1, `${l}: ${r.fraction} after ${last}`);
      last = r.fraction;
      messages.add(r.message.split(" ")[0]!);
    }
    assert.ok(last >= 0.9, `ends near done: ${last}`);
    for (const m of ["downloading", "extracting", "unpacking", "configuring"]) assert.ok(messages.has(m), m);
  });
});

describe("debootstrap build", { skip: skipReason ?? false }, () => {
  test("a tiny minbase template builds, is post-processed, and rebuilds instantly", async () => {
    const shared = process.env.KILN_TEMPLATE_DIR;
    const store = new TemplateStore(shared ?? join(scratch, "store"));
    const fractions: number[] = [];
    const t0 = Date.now();
    const t = await build(store, "kiln-test-tiny", {
      packages: [],
      onProgress: (p) => fractions.push(p.fraction),
    });
    const firstMs = Date.now() - t0;
    console.log(`# tiny template: ${(t.sizeBytes / 1e6).toFixed(1)} MB in ${(firstMs / 1000).toFixed(1)}s`);
    assert.equal(t.source, "debootstrap");
    assert.deepEqual(t.packages, []);
    assert.equal(t.recipe?.variant, "minbase");
    assert.equal(fractions.at(-1), 1);
    for (const bin of ["bin/sh", "usr/bin/bash", "usr/bin/env"])
      assert.ok(existsSync(join(t.rootfs, bin)), bin);
    assert.equal(readFileSync(join(t.rootfs, "etc/hostname"), "utf8"), "kiln\n");
    assert.match(readFileSync(join(t.rootfs, "etc/hosts"), "utf8"), /127\.0\.0\.1\s+localhost/);
    assert.equal(statSync(join(t.rootfs, "tmp")).mode & 0o7777, 0o1777);
    assert.equal(statSync(join(t.rootfs, "workspace")).mode & 0o7777, 0o755);
    assert.ok(statSync(join(t.rootfs, ".kiln")).isDirectory(), "the agent's mount point");
    assert.deepEqual(
      readdirSync(join(t.rootfs, "var/cache/apt/archives")).filter((f) => f.endsWith(".deb")),
      [],
    );
    assert.deepEqual(
      readdirSync(join(t.rootfs, "var/lib/apt/lists")).filter((f) => f !== "partial" && f !== "lock"),
      [],
    );
    assert.deepEqual(mountsUnder(store.root), []);

    const t1 = Date.now();
    const again = await build(store, "kiln-test-tiny", { packages: [] });
    assert.ok(Date.now() - t1 < 2000, "a second build of the same recipe is instant");
    assert.equal(again.digest, t.digest);
    assert.equal(again.rootfs, t.rootfs);
    // A different name for the same recipe shares the blob.
    const alias = await build(store, "kiln-test-tiny-alias", { packages: [] });
    assert.equal(alias.rootfs, t.rootfs);
    assert.equal((await store.remove("kiln-test-tiny-alias")).blobRemoved, false);
    if (!shared) await store.remove("kiln-test-tiny");
  });

  test("an aborted build leaves nothing behind", async () => {
    const store = new TemplateStore(join(scratch, "abort-store"));
    const ac = new AbortController();
    await assert.rejects(
      build(store, "aborted", {
        packages: ["bash"],
        signal: ac.signal,
        onProgress: (p) => {
          if (p.message.startsWith("downloading") && !p.message.includes("InRelease")) ac.abort();
        },
      }),
      (e: unknown) => isKilnError(e, "aborted"),
    );
    assert.deepEqual(readdirSync(join(store.root, "tmp")), []);
    assert.deepEqual(readdirSync(join(store.root, "blobs")), []);
    assert.deepEqual(readdirSync(join(store.root, "names")), []);
    assert.deepEqual(readdirSync(join(store.root, "locks")), []);
    assert.deepEqual(mountsUnder(store.root), []);
  });

  test("a name holding another recipe conflicts before any download", async () => {
    const store = new TemplateStore(join(scratch, "conflict-store"));
    const staging = await store.stagingDir("test");
    mkdirSync(join(staging, "rootfs"));
    await store.commit("taken", staging, {
      digest: recipeDigest("bookworm", ["bash"]),
      source: "debootstrap",
      packages: ["bash"],
    });
    const t0 = Date.now();
    await assert.rejects(build(store, "taken", { packages: [] }), (e: unknown) => isKilnError(e, "conflict"));
    assert.ok(Date.now() - t0 < 2000);
  });
});
