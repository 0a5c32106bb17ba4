import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { KILN_RUNSC, runscBuilds } from "./runtimes.ts";

test("KILN_GVISOR_PLATFORM picks the runsc builds and their order", () => {
  const labels = (env: NodeJS.ProcessEnv) => runscBuilds(env).map((b) => b.label);
  // Kiln's own build first (fidelity: see runtimes.ts), the system's as the fallback.
  assert.deepEqual(labels({}), ["platform systrap", "platform ptrace"]);
  assert.deepEqual(labels({ KILN_GVISOR_PLATFORM: "auto" }), ["platform systrap", "platform ptrace"]);
  assert.deepEqual(labels({ KILN_GVISOR_PLATFORM: "systrap" }), ["platform systrap"]);
  assert.deepEqual(labels({ KILN_GVISOR_PLATFORM: "ptrace" }), ["platform ptrace"]);
  assert.deepEqual(labels({ KILN_GVISOR_PLATFORM: "kvm" }), []);
  assert.equal(
    runscBuilds({ KILN_GVISOR_PLATFORM: "systrap", KILN_RUNSC: "/x/runsc" })[0]!.binary,
    "/x/runsc",
  );
  // Each build keeps its containers' records apart.
  const names = runscBuilds({}).map((b) => b.stateName);
  assert.equal(new Set(names).size, names.length);
});

test("Kiln's own runsc is where scripts/install-runsc.sh puts it", () => {
  const script = readFileSync(new URL("../../../scripts/install-runsc.sh", import.meta.url), "utf8");
  const dest = /^DEST="([^"]+)"$/m.exec(script)?.[1];
  assert.equal(`${dest}/runsc`, KILN_RUNSC);
});
