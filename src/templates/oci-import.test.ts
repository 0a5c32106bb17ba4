/**
 * Image import: docker-save and OCI layout tarballs made here with
 * tar-stream, applied layer by layer with whiteouts; hostile layers must be
 * rejected or contained, with nothing written outside the store.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import {
  existsSync,
  lstatSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { isKilnError } from "../core/errors.ts";
import { importImage } from "./oci-import.ts";
import { TemplateStore } from "./template-store.ts";
import { dockerSaveTar, type Member, ociLayoutTar, writeTo } from "./test-images.ts";

let dir: string;
let store: TemplateStore;

before(() => {
  dir = mkdtempSync(join(tmpdir(), "kiln-oci-test-"));
  store = new TemplateStore(join(dir, "store"));
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** The tree under `root` as sorted lines: `path type mode [-> target | =content]`. */
function snapshot(root: string): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const name of readdirSync(join(root, rel)).sort()) {
      const p = rel ? `${rel}/${name}` : name;
      const st = lstatSync(join(root, p));
      const mode = (st.mode & 0o7777).toString(8).padStart(4, "0");
      if (st.isDirectory()) {
        out.push(`${p}/ ${mode}`);
        walk(p);
      } else if (st.isSymbolicLink()) out.push(`${p} -> ${readlinkSync(join(root, p))}`);
      else out.push(`${p} ${mode} =${readFileSync(join(root, p), "utf8")}`);
    }
  };
  walk("");
  return out;
}

/** The store holds no leftovers of failed imports: no staging, no blobs, no names. */
function assertStoreClean(s: TemplateStore): void {
  assert.deepEqual(readdirSync(join(s.root, "tmp")), []);
  assert.deepEqual(readdirSync(join(s.root, "blobs")), []);
  assert.deepEqual(readdirSync(join(s.root, "names")), []);
}

const layer1: Member[] = [
  { name: "bin/", type: "directory" },
  { name: "bin/hello", mode: 0o755, content: "#!/bin/sh\necho hello\n" },
  { name: "etc/", type: "directory" },
  { name: "etc/motd", content: "welcome\n" },
  { name: "etc/motd.hard", type: "link", linkname: "etc/motd" },
  { name: "etc/gone", content: "delete me\n" },
  { name: "hello", type: "symlink", linkname: "bin/hello" },
  { name: "abs", type: "symlink", linkname: "/etc/motd" },
  { name: "opq/", type: "directory" },
  { name: "opq/a", content: "a\n" },
  { name: "opq/sub/", type: "directory" },
  { name: "opq/sub/b", content: "b\n" },
  { name: "dev/", type: "directory" },
  { name: "dev/null", type: "character-device", mode: 0o666 },
  { name: "suid", mode: 0o4755, content: "x" },
];
const layer2: Member[] = [
  { name: "etc/", type: "directory" },
  { name: "etc/.wh.gone", content: "" },
  { name: "newdir/", type: "directory", mode: 0o700 },
  { name: "newdir/x", mode: 0o600, content: "x\n" },
];
const layer3: Member[] = [
  { name: "opq/", type: "directory", mode: 0o750 },
  { name: "opq/.wh..wh..opq", content: "" },
  { name: "opq/c", content: "c\n" },
];

const expected3 = [
  ".kiln/ 0755",
  "abs -> /etc/motd",
  "bin/ 0755",
  "bin/hello 0755 =#!/bin/sh\necho hello\n",
  "dev/ 0755",
  "etc/ 0755",
  "etc/motd 0644 =welcome\n",
  "etc/motd.hard 0644 =welcome\n",
  "hello -> bin/hello",
  "newdir/ 0700",
  "newdir/x 0600 =x\n",
  "opq/ 0750",
  "opq/c 0644 =c\n",
  "suid 4755 =x",
  "tmp/ 1777",
  "workspace/ 0755",
];

describe("importImage: docker save", () => {
  test("applies three layers with whiteouts, an opaque dir, links and modes", async () => {
    const tar = writeTo(join(dir, "three.tar"), await dockerSaveTar([layer1, layer2, layer3]));
    const progress: number[] = [];
    const t = await importImage(store, "three", tar, { onProgress: (p) => progress.push(p.fraction) });
    assert.equal(t.source, "oci-import");
    assert.match(t.digest, /^sha256:[0-9a-f]{64}$/);
    assert.deepEqual(snapshot(t.rootfs), expected3);
    // The hard link is a hard link, not a copy.
    assert.equal(lstatSync(join(t.rootfs, "etc/motd")).ino, lstatSync(join(t.rootfs, "etc/motd.hard")).ino);
    assert.deepEqual(t.image, {
      env: ["PATH=/usr/local/bin:/usr/bin:/bin", "GREETING=hi"],
      cmd: ["/bin/hello"],
      entrypoint: [],
      workingDir: "/app",
      user: "1000:1000",
      architecture: "amd64",
      os: "linux",
      repoTags: ["kiln-test:latest"],
    });
    assert.ok(t.sizeBytes > 0);
    assert.equal(progress.at(-1), 1);
    for (let i = 1; i < progress.length; i++)
      assert.ok(progress[i]! >= progress[i - 1]!, "progress never goes back");
    assert.deepEqual(readdirSync(join(store.root, "tmp")), []);

    // Same image again: same blob, no second copy.
    const again = await importImage(store, "three-again", tar);
    assert.equal(again.digest, t.digest);
    assert.equal(again.rootfs, t.rootfs);
    assert.equal(readdirSync(join(store.root, "blobs")).length, 1);
  });

  test("gzip-compressed layers in a docker save tarball", async () => {
    const tar = writeTo(join(dir, "gz.tar"), await dockerSaveTar([layer1, layer2], { gzipLayers: true }));
    const t = await importImage(store, "gz", tar);
    const snap = snapshot(t.rootfs);
    assert.ok(snap.includes("opq/sub/b 0644 =b\n"));
    assert.ok(snap.includes("newdir/x 0600 =x\n"));
    assert.ok(!snap.some((l) => l.startsWith("etc/gone")));
  });

  test("a file replaces a directory and a directory replaces a file", async () => {
    const tar = writeTo(
      join(dir, "replace.tar"),
      await dockerSaveTar([
        [
          { name: "d/", type: "directory" },
          { name: "d/inner", content: "1" },
          { name: "f", content: "file" },
        ],
        [
          { name: "d", content: "now a file" },
          { name: "f/", type: "directory" },
          { name: "f/inner", content: "2" },
        ],
      ]),
    );
    const t = await importImage(store, "replace", tar);
    assert.deepEqual(snapshot(t.rootfs), [
      ".kiln/ 0755",
      "d 0644 =now a file",
      "f/ 0755",
      "f/inner 0644 =2",
      "tmp/ 1777",
      "workspace/ 0755",
    ]);
  });
});

describe("importImage: OCI layout", () => {
  test("gzip layers, digests checked, config read", async () => {
    const { tar, configDigest } = await ociLayoutTar([layer1, layer2, layer3]);
    const path = writeTo(join(dir, "oci.tar"), tar);
    const s = new TemplateStore(join(dir, "oci-store"));
    const t = await importImage(s, "oci", path);
    assert.equal(t.digest, configDigest);
    assert.deepEqual(snapshot(t.rootfs), expected3);
    assert.equal(t.image?.workingDir, "/app");
    assert.equal(t.image?.repoTags, undefined);
    // The same image saved by docker has the same config, so the shared store keeps one blob.
    const viaDocker = await importImage(store, "oci-too", path);
    assert.equal(viaDocker.digest, (await store.get("three")).digest);
  });

  test("a corrupted layer blob is rejected by its digest", async () => {
    const s = new TemplateStore(join(dir, "corrupt-store"));
    const { tar } = await ociLayoutTar([[{ name: "a", content: "aaaa" }]]);
    // Flip a byte inside the gzip layer's data, keeping the tar framing intact.
    const bad = Buffer.from(tar);
    const gzAt = bad.indexOf(Buffer.from([0x1f, 0x8b, 0x08]));
    assert.ok(gzAt > 0);
    bad[gzAt + 12] = (bad[gzAt + 12] ?? 0) ^ 0xff;
    await assert.rejects(importImage(s, "bad", writeTo(join(dir, "bad.tar"), bad)), (e: unknown) =>
      isKilnError(e, "invalid_argument"),
    );
    assertStoreClean(s);
  });
});

describe("importImage: hostile layers", () => {
  const probe = () => `kiln-probe-${randomBytes(6).toString("hex")}`;

  async function rejected(layers: Member[][], code: "invalid_argument" = "invalid_argument"): Promise<void> {
    const s = new TemplateStore(join(dir, `hostile-${probe()}`));
    const tar = writeTo(join(dir, `${probe()}.tar`), await dockerSaveTar(layers));
    await assert.rejects(importImage(s, "hostile", tar), (e: unknown) => isKilnError(e, code));
    assertStoreClean(s);
  }

  test("an entry with .. segments is rejected", async () => {
    const name = probe();
    await rejected([[{ name: `../../../../../../../../../tmp/${name}`, content: "evil" }]]);
    await rejected([[{ name: `a/../../${name}`, content: "evil" }]]);
    assert.equal(existsSync(join("/tmp", name)), false);
    assert.equal(existsSync(join(dir, name)), false);
  });

  test("an absolute entry name is rejected", async () => {
    const name = probe();
    await rejected([[{ name: `/tmp/${name}`, content: "evil" }]]);
    assert.equal(existsSync(join("/tmp", name)), false);
  });

  test("a hard link to outside the root is rejected", async () => {
    await rejected([[{ name: "passwd", type: "link", linkname: "../../../../../../etc/passwd" }]]);
    await rejected([[{ name: "passwd", type: "link", linkname: "/etc/passwd" }]]);
  });

  test("writing through a symlink to /tmp stays inside the rootfs", async () => {
    const name = probe();
    const s = new TemplateStore(join(dir, `contain-${name}`));
    const tar = writeTo(
      join(dir, `${name}.tar`),
      await dockerSaveTar([
        [
          { name: "evil", type: "symlink", linkname: "/tmp" },
          { name: `evil/${name}`, content: "evil" },
          { name: "up", type: "symlink", linkname: "../../../../.." },
          { name: `up/${name}-up`, content: "up" },
        ],
      ]),
    );
    const t = await importImage(s, "contained", tar);
    assert.equal(existsSync(join("/tmp", name)), false, "nothing written to the host's /tmp");
    assert.equal(existsSync(join(dir, `${name}-up`)), false);
    assert.equal(readFileSync(join(t.rootfs, "tmp", name), "utf8"), "evil");
    assert.equal(readFileSync(join(t.rootfs, `${name}-up`), "utf8"), "up");
    assert.equal(readlinkSync(join(t.rootfs, "evil")), "/tmp");
  });

  test("a symlink to a host file is replaced, never written through", async () => {
    const name = probe();
    const host = join(dir, `${name}-host`);
    writeFileSync(host, "host data");
    const s = new TemplateStore(join(dir, `leaf-${name}`));
    const tar = writeTo(
      join(dir, `${name}.tar`),
      await dockerSaveTar([
        [{ name: "leaf", type: "symlink", linkname: host }],
        [{ name: "leaf", content: "image data", mode: 0o600 }],
      ]),
    );
    const t = await importImage(s, "leaf", tar);
    assert.equal(readFileSync(host, "utf8"), "host data");
    assert.equal(lstatSync(host).mode & 0o777, 0o644);
    assert.equal(readFileSync(join(t.rootfs, "leaf"), "utf8"), "image data");
    assert.equal(lstatSync(join(t.rootfs, "leaf")).isSymbolicLink(), false);
  });

  test("a whiteout through an escaping symlink deletes nothing on the host", async () => {
    const name = probe();
    const hostDir = mkdtempSync(join(dir, "victim-"));
    writeFileSync(join(hostDir, "keep"), "keep");
    const s = new TemplateStore(join(dir, `wh-${name}`));
    const tar = writeTo(
      join(dir, `${name}.tar`),
      await dockerSaveTar([
        [{ name: "v", type: "symlink", linkname: hostDir }],
        [
          { name: "v/.wh.keep", content: "" },
          { name: "v2/", type: "directory" },
        ],
      ]),
    );
    await importImage(s, "wh", tar);
    assert.equal(readFileSync(join(hostDir, "keep"), "utf8"), "keep");
  });

  test("not an image, and a missing file", async () => {
    const s = new TemplateStore(join(dir, `notimg-${probe()}`));
    const junk = writeTo(join(dir, "junk.tar"), Buffer.from("this is not a tar file at all".repeat(40)));
    await assert.rejects(importImage(s, "junk", junk), (e: unknown) => isKilnError(e, "invalid_argument"));
    assertStoreClean(s);
    await assert.rejects(importImage(s, "missing", join(dir, "nope.tar")), (e: unknown) =>
      isKilnError(e, "not_found"),
    );
    await assert.rejects(importImage(s, "../bad", junk), (e: unknown) => isKilnError(e, "invalid_argument"));
  });

  test("an aborted import leaves nothing behind", async () => {
    const s = new TemplateStore(join(dir, `abort-${probe()}`));
    const tar = writeTo(join(dir, "abort.tar"), await dockerSaveTar([layer1, layer2, layer3]));
    const ac = new AbortController();
    ac.abort();
    await assert.rejects(importImage(s, "aborted", tar, { signal: ac.signal }), (e: unknown) =>
      isKilnError(e, "aborted"),
    );
    const ac2 = new AbortController();
    await assert.rejects(
      importImage(s, "aborted", tar, {
        signal: ac2.signal,
        onProgress: (p) => {
          if (p.message.startsWith("applying")) ac2.abort();
        },
      }),
      (e: unknown) => isKilnError(e, "aborted"),
    );
    assertStoreClean(s);
  });
});
