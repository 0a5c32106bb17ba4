/**
 * The `e2b` SDK's `Volume` API, unmodified, against Kiln's E2B handler: the
 * management calls (`create`, `connect`, `getInfo`, `list`, `destroy`), the
 * content calls a `Volume` makes with its own token (`writeFile`, `readFile`,
 * `list`, `makeDir`, `getInfo`, `exists`, `updateMetadata`, `remove`), and
 * `Sandbox.create({ volumeMounts })` on a real tier: the sandbox sees what the
 * SDK wrote, and the SDK what the sandbox wrote. Another owner's key or token
 * gets what a volume that does not exist gets.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { after, before, test } from "node:test";
import { Sandbox, Volume, VolumeError, VolumeNotFoundError, VolumePathNotFoundError } from "e2b";
import { tierRequired } from "../conformance/suite.ts";
import { type E2bFixture, e2bFixture, rejectsWith } from "./suite.ts";

if (!process.env.KILN_TEMPLATE_DIR && process.getuid?.() === 0 && existsSync("/var/cache/kiln/templates")) {
  process.env.KILN_TEMPLATE_DIR = "/var/cache/kiln/templates";
}

let f: E2bFixture;
before(async () => {
  f = await e2bFixture("namespace");
});
after(() => f.dispose());

/** Connection options of a content call (the SDK's volume API URL is the server's). */
const content = () => ({ apiUrl: f.server.url, requestTimeoutMs: 60_000 });

test("Volume management and content through the SDK; another owner sees nothing", async () => {
  const vol = await Volume.create("data", f.opts());
  assert.match(vol.volumeId, /^vol_[a-z0-9]{20}$/);
  assert.equal(vol.name, "data");
  assert.ok(vol.token.length > 20);
  assert.deepEqual(await Volume.list(f.opts()), [{ volumeId: vol.volumeId, name: "data" }]);
  const again = await Volume.connect(vol.volumeId, f.opts());
  assert.equal(again.token, vol.token);
  await rejectsWith(Volume.create("data", f.opts()), VolumeError);

  const w = await vol.writeFile("/dir/a.txt", "hello", content());
  assert.equal(w.type, "file");
  assert.equal(w.path, "/dir/a.txt");
  assert.equal(w.size, 5);
  assert.equal(await vol.readFile("/dir/a.txt", content()), "hello");
  assert.deepEqual(
    Buffer.from(await vol.readFile("dir/a.txt", { ...content(), format: "bytes" })).toString(),
    "hello",
  );
  const d = await vol.makeDir("/x/y/z", { ...content(), force: true });
  assert.equal(d.type, "directory");
  assert.deepEqual(
    (await vol.list("/", content())).map((e) => `${e.name}:${e.type}`),
    ["dir:directory", "x:directory"],
  );
  assert.deepEqual(
    (await vol.list("/x", { ...content(), depth: 3 })).map((e) => e.path),
    ["/x/y", "/x/y/z"],
  );
  assert.equal((await vol.getInfo("/dir/a.txt", content())).size, 5);
  assert.ok((await vol.getInfo("/dir/a.txt", content())).mtime instanceof Date);
  assert.equal(await vol.exists("/dir/a.txt", content()), true);
  assert.equal(await vol.exists("/nope", content()), false);
  assert.equal((await vol.updateMetadata("/dir/a.txt", { mode: 0o600 }, content())).mode & 0o777, 0o600);
  // No setuid file is made on the host by a request.
  assert.equal((await vol.updateMetadata("/dir/a.txt", { mode: 0o4755 }, content())).mode, 0o755);
  await rejectsWith(vol.readFile("/nope", content()), VolumePathNotFoundError);
  await rejectsWith(vol.makeDir("/dir", content()), VolumeError);
  await vol.remove("/x", content());
  assert.equal(await vol.exists("/x/y", content()), false);

  // Bob: not his volume, by management call or by content token.
  await rejectsWith(Volume.getInfo(vol.volumeId, f.opts("bob")), VolumeNotFoundError);
  assert.equal(await Volume.destroy(vol.volumeId, f.opts("bob")), false);
  assert.deepEqual(await Volume.list(f.opts("bob")), []);
  const bobs = await Volume.create("data", f.opts("bob"));
  const forged = new Volume(vol.volumeId, "data", bobs.token);
  await rejectsWith(forged.readFile("/dir/a.txt", content()), VolumePathNotFoundError);
  const noToken = new Volume(vol.volumeId, "data", "kt1.e2b-volume.s.AAAA");
  await rejectsWith(noToken.list("/", content()), VolumePathNotFoundError);
  assert.equal(await Volume.destroy(bobs.volumeId, f.opts("bob")), true);

  assert.equal(await Volume.destroy(vol.volumeId, f.opts()), true);
  await rejectsWith(Volume.getInfo(vol.volumeId, f.opts()), VolumeNotFoundError);
  // The old token died with its volume.
  await rejectsWith(vol.readFile("/dir/a.txt", content()), VolumePathNotFoundError);
});

test("Sandbox.create with volumeMounts: the sandbox and the SDK see each other's writes", async (t) => {
  const ns = (await f.kiln.doctor()).find((s) => s.tier === "namespace");
  if (!ns?.available) {
    if (tierRequired("namespace")) assert.fail(`tier namespace required but unavailable: ${ns?.reason}`);
    t.skip(`tier namespace unavailable: ${ns?.reason}`);
    return;
  }
  const vol = await Volume.create("shared", f.opts());
  await vol.writeFile("/from-sdk.txt", "sdk", content());
  const sbx = await Sandbox.create({ ...f.opts(), volumeMounts: { "/mnt/shared": vol } });
  try {
    const r = await sbx.commands.run(
      "cat /mnt/shared/from-sdk.txt && echo sandbox > /mnt/shared/from-sb.txt",
    );
    assert.equal(r.stdout, "sdk");
    assert.equal(await vol.readFile("/from-sb.txt", content()), "sandbox\n");
    const info = await Sandbox.getInfo(sbx.sandboxId, f.opts());
    assert.deepEqual(info.volumeMounts, [{ name: "shared", path: "/mnt/shared" }]);
    const listed = await Sandbox.list(f.opts()).nextItems();
    assert.deepEqual(listed.find((s) => s.sandboxId === sbx.sandboxId)?.volumeMounts, info.volumeMounts);
    // Mounted: destroying it is refused.
    await rejectsWith(Volume.destroy(vol.volumeId, f.opts()), VolumeError);
    // Bob cannot mount Alice's volume by name.
    await rejectsWith(Sandbox.create({ ...f.opts("bob"), volumeMounts: { "/mnt/x": "shared" } }), Error);
  } finally {
    await sbx.kill();
  }
  assert.equal(await Volume.destroy(vol.volumeId, f.opts()), true);
});
