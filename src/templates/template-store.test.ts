/** The template store: names, content addressing, removal and garbage collection. */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { isKilnError } from "../core/errors.ts";
import { defaultTemplateDir, TemplateStore } from "./template-store.ts";

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), "kiln-store-test-"));
});
after(() => rmSync(dir, { recursive: true, force: true }));

const digestOf = (s: string) => `sha256:${createHash("sha256").update(s).digest("hex")}`;

/** Commits a tiny rootfs holding one file as `name`. */
async function add(store: TemplateStore, name: string, content: string) {
  const staging = await store.stagingDir("test");
  mkdirSync(join(staging, "rootfs", "etc"), { recursive: true });
  writeFileSync(join(staging, "rootfs", "etc", "content"), content);
  return store.commit(name, staging, {
    digest: digestOf(content),
    source: "debootstrap",
    packages: ["bash"],
  });
}

describe("TemplateStore", () => {
  test("get, list, resolve and the manifest on disk", async () => {
    const store = new TemplateStore(join(dir, "s1"));
    assert.deepEqual(await store.list(), []);
    const t = await add(store, "alpha", "hello");
    assert.equal(t.name, "alpha");
    assert.equal(t.digest, digestOf("hello"));
    assert.equal(t.source, "debootstrap");
    assert.deepEqual(t.packages, ["bash"]);
    assert.equal(t.sizeBytes, 5);
    assert.ok(!Number.isNaN(Date.parse(t.createdAt)));
    assert.equal(t.rootfs, join(store.root, "blobs", t.digest.slice(7), "rootfs"));
    assert.equal(readFileSync(join(t.rootfs, "etc/content"), "utf8"), "hello");
    assert.deepEqual(await store.get("alpha"), t);
    assert.equal(await store.resolve("alpha"), t.rootfs);
    assert.deepEqual(
      (await store.list()).map((x) => x.name),
      ["alpha"],
    );
    const onDisk = JSON.parse(
      readFileSync(join(store.root, "blobs", t.digest.slice(7), "manifest.json"), "utf8"),
    );
    assert.equal(onDisk.digest, t.digest);
    assert.equal(JSON.parse(readFileSync(join(store.root, "names", "alpha.json"), "utf8")).digest, t.digest);
    // Staging is gone once committed.
    assert.deepEqual(readdirSync(join(store.root, "tmp")), []);
  });

  test("unknown and invalid names", async () => {
    const store = new TemplateStore(join(dir, "s2"));
    await assert.rejects(store.get("nope"), (e: unknown) => isKilnError(e, "not_found"));
    await assert.rejects(store.resolve("nope"), (e: unknown) => isKilnError(e, "not_found"));
    await assert.rejects(store.remove("nope"), (e: unknown) => isKilnError(e, "not_found"));
    for (const bad of ["", "../x", "a/b", ".hidden", "x".repeat(200)])
      await assert.rejects(store.get(bad), (e: unknown) => isKilnError(e, "invalid_argument"));
    assert.equal(await store.has("nope"), false);
  });

  test("two names share one blob; removing one keeps it, removing both collects it", async () => {
    const store = new TemplateStore(join(dir, "s3"));
    const a = await add(store, "a", "same");
    const b = await add(store, "b", "same");
    const c = await store.tag("c", a.digest);
    assert.equal(b.digest, a.digest);
    assert.equal(b.rootfs, a.rootfs);
    assert.equal(c.rootfs, a.rootfs);
    assert.deepEqual(readdirSync(join(store.root, "blobs")), [a.digest.slice(7)]);
    assert.deepEqual(
      (await store.list()).map((x) => x.name),
      ["a", "b", "c"],
    );

    assert.deepEqual(await store.remove("a"), { name: "a", digest: a.digest, blobRemoved: false });
    assert.ok(existsSync(a.rootfs));
    await assert.rejects(store.get("a"), (e: unknown) => isKilnError(e, "not_found"));
    assert.equal((await store.get("b")).rootfs, a.rootfs);
    assert.equal((await store.remove("b")).blobRemoved, false);
    assert.equal((await store.remove("c")).blobRemoved, true);
    assert.equal(existsSync(a.rootfs), false);
    assert.deepEqual(readdirSync(join(store.root, "blobs")), []);
    assert.deepEqual(readdirSync(join(store.root, "tmp")), []);
    assert.deepEqual(await store.list(), []);
  });

  test("a name holding other content conflicts unless replaced; the old blob is collected", async () => {
    const store = new TemplateStore(join(dir, "s4"));
    const one = await add(store, "n", "one");
    await assert.rejects(add(store, "n", "two"), (e: unknown) => isKilnError(e, "conflict"));
    // The blob of the refused commit stays (content-addressed, unnamed) until pruned.
    assert.equal(readdirSync(join(store.root, "blobs")).length, 2);
    assert.deepEqual((await store.prune()).blobs, [digestOf("two")]);
    assert.equal((await store.get("n")).digest, one.digest);
    await assert.rejects(store.tag("n", digestOf("missing")), (e: unknown) => isKilnError(e, "not_found"));

    await add(store, "other", "two");
    const replaced = await store.tag("n", digestOf("two"), { replace: true });
    assert.equal(replaced.digest, digestOf("two"));
    assert.equal(existsSync(one.rootfs), false, "the unreferenced old blob is gone");
  });

  test("prune removes staging left by dead processes, not live ones", async () => {
    const store = new TemplateStore(join(dir, "s5"));
    mkdirSync(join(store.root, "tmp", "999999999-debootstrap-dead"), { recursive: true });
    const live = await store.stagingDir("live");
    const r = await store.prune();
    assert.deepEqual(r.staging, ["999999999-debootstrap-dead"]);
    assert.ok(existsSync(live));
  });

  test("withLock serializes holders and takes over a dead holder's lock", async () => {
    const store = new TemplateStore(join(dir, "s6"));
    writeFileSync(join(store.root, "locks", "k.lock"), "999999999");
    const order: string[] = [];
    await Promise.all([
      store.withLock("k", async () => {
        order.push("1 start");
        await new Promise((r) => setTimeout(r, 300));
        order.push("1 end");
      }),
      new Promise((r) => setTimeout(r, 50)).then(() =>
        store.withLock("k", async () => {
          order.push("2");
        }),
      ),
    ]);
    assert.deepEqual(order, ["1 start", "1 end", "2"]);
    assert.equal(existsSync(join(store.root, "locks", "k.lock")), false);
  });

  test("default root: $KILN_TEMPLATE_DIR, else <dataDir>/templates", () => {
    const saved = process.env.KILN_TEMPLATE_DIR;
    try {
      process.env.KILN_TEMPLATE_DIR = "/var/cache/kiln/templates";
      assert.equal(defaultTemplateDir("/data"), "/var/cache/kiln/templates");
      delete process.env.KILN_TEMPLATE_DIR;
      assert.equal(defaultTemplateDir("/data"), "/data/templates");
    } finally {
      if (saved === undefined) delete process.env.KILN_TEMPLATE_DIR;
      else process.env.KILN_TEMPLATE_DIR = saved;
    }
  });
});
