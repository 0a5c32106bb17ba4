import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { which } from "./host.ts";
import { jailArgs, WorkspaceDir } from "./workspace-dir.ts";

const bwrap = which("bwrap");
const trial = bwrap ? spawnSync(bwrap, jailArgs("/usr", ["/usr/bin/true"])).status : 1;
const skip = !bwrap
  ? "bubblewrap is not installed"
  : trial !== 0
    ? "bwrap cannot make namespaces here"
    : false;

const root = mkdtempSync(join(tmpdir(), "kiln-wsdir-"));
after(() => rmSync(root, { recursive: true, force: true }));

test("a saved workspace comes back with its files, modes and links, and links are never followed", {
  skip,
}, async () => {
  const secret = join(root, "secret");
  writeFileSync(secret, "host only");
  const ws = new WorkspaceDir(join(root, "a"));
  await ws.create();
  mkdirSync(join(ws.mountPath, "d"));
  writeFileSync(join(ws.mountPath, "d", "f"), "kept");
  chmodSync(join(ws.mountPath, "d", "f"), 0o640);
  symlinkSync(secret, join(ws.mountPath, "to-host"));
  symlinkSync(root, join(ws.mountPath, "d", "dir-link"));
  const saved = WorkspaceDir.saved(root);
  assert.ok((await ws.saveTo(saved)) > 0);
  assert.ok(!readFileSync(saved).includes("host only"), "the link's target is not in the copy");
  const copy = new WorkspaceDir(join(root, "b"));
  await copy.createFrom(saved);
  assert.equal(readFileSync(join(copy.mountPath, "d", "f"), "utf8"), "kept");
  assert.equal(
    spawnSync("stat", ["-c", "%a", join(copy.mountPath, "d", "f")], { encoding: "utf8" }).stdout,
    "640\n",
  );
  assert.equal(readlinkSync(join(copy.mountPath, "to-host")), secret);
  assert.equal(readlinkSync(join(copy.mountPath, "d", "dir-link")), root);
});

test("the copy is read in a jail that sees the workspace and public system files only", { skip }, () => {
  const secret = join(root, "jail-secret");
  writeFileSync(secret, "host only");
  const ws = join(root, "jail-ws");
  mkdirSync(ws);
  writeFileSync(join(ws, "a"), "inside");
  const cat = (p: string) => spawnSync(bwrap!, jailArgs(ws, ["/usr/bin/cat", p]), { encoding: "utf8" });
  assert.equal(cat("/w/a").stdout, "inside", "positive control: the workspace is readable");
  assert.notEqual(cat(secret).status, 0, "a host file outside the system directories is not there");
  assert.notEqual(cat("/etc/passwd").status, 0, "nor is /etc");
});

test("destroy removes a workspace whose directories the sandbox made unreadable", async () => {
  const ws = new WorkspaceDir(join(root, "c"));
  await ws.create();
  mkdirSync(join(ws.mountPath, "locked", "inner"), { recursive: true });
  writeFileSync(join(ws.mountPath, "locked", "inner", "f"), "x");
  chmodSync(join(ws.mountPath, "locked", "inner"), 0);
  chmodSync(join(ws.mountPath, "locked"), 0);
  await ws.destroy();
  assert.equal(existsSync(ws.dir), false);
});
