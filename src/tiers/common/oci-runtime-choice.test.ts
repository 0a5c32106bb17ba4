import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { KilnError } from "../../core/errors.ts";
import {
  type ResolvedRuntime,
  RUNTIME_RECORD,
  readRuntimeRecord,
  runtimeForCheckpoint,
  writeRuntimeRecord,
} from "./oci-runtime-choice.ts";

const dir = mkdtempSync(join(tmpdir(), "kiln-runtime-choice-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const systrap: ResolvedRuntime = {
  binary: "/opt/kiln/runsc-new/runsc",
  path: "/opt/kiln/runsc-new/runsc",
  flags: ["--platform=systrap"],
  label: "platform systrap",
  stateName: "runsc-systrap",
  version: "runsc version 0.0~20240729.0",
};
const ptrace: ResolvedRuntime = {
  binary: "runsc",
  path: "/usr/bin/runsc",
  flags: ["--platform=ptrace"],
  label: "platform ptrace",
  stateName: "runsc",
  version: "runsc version 0.0~20221219.0",
};

function checkpointDir(name: string, record?: string): string {
  const d = join(dir, name);
  mkdirSync(d);
  if (record !== undefined) writeFileSync(join(d, RUNTIME_RECORD), record);
  return d;
}

function code(f: () => unknown): string | undefined {
  try {
    f();
  } catch (e) {
    assert.ok(e instanceof KilnError, String(e));
    return e.code;
  }
  return undefined;
}

test("a checkpoint is restored by the build that took it, whichever is chosen now", () => {
  const d = checkpointDir("same");
  writeRuntimeRecord(d, ptrace);
  assert.deepEqual(readRuntimeRecord(d), { path: ptrace.path, label: ptrace.label, version: ptrace.version });
  assert.equal(runtimeForCheckpoint("gvisor", d, [systrap, ptrace], "runsc"), ptrace);
});

test("a checkpoint of another version of the same binary is refused with tier_unavailable", () => {
  const d = checkpointDir("other-version");
  writeRuntimeRecord(d, { ...systrap, version: "runsc version 0.0~20230101.0" });
  assert.equal(
    code(() => runtimeForCheckpoint("gvisor", d, [systrap, ptrace], "runsc")),
    "tier_unavailable",
  );
});

test("a checkpoint of a build not in use here is refused with tier_unavailable", () => {
  const d = checkpointDir("gone");
  writeRuntimeRecord(d, systrap);
  assert.equal(
    code(() => runtimeForCheckpoint("gvisor", d, [ptrace], "runsc")),
    "tier_unavailable",
  );
  // The same platform from another path is another build.
  assert.equal(
    code(() => runtimeForCheckpoint("gvisor", d, [{ ...systrap, path: "/elsewhere/runsc" }], "runsc")),
    "tier_unavailable",
  );
});

test("a checkpoint without a record was taken by the system's runsc; unreadable records count as none", () => {
  assert.equal(runtimeForCheckpoint("gvisor", checkpointDir("none"), [systrap, ptrace], "runsc"), ptrace);
  const bad = checkpointDir("bad", "{not json");
  assert.equal(readRuntimeRecord(bad), undefined);
  assert.equal(runtimeForCheckpoint("gvisor", bad, [systrap, ptrace], "runsc"), ptrace);
  assert.equal(
    code(() => runtimeForCheckpoint("gvisor", bad, [systrap], "runsc")),
    "tier_unavailable",
  );
});
