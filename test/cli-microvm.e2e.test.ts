/**
 * `kiln run --tier microvm` runs the command in the guest, not on the host:
 * `uname -r` prints the release of the guest kernel that `kiln doctor`
 * reports for the tier (Debian's cloud kernel), never the host's. Skipped
 * with its reason when the tier cannot run here; KILN_REQUIRE_TIERS=microvm
 * makes that a failure.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { release, tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { TierStatus } from "../src/index.ts";
import { assertExit, kiln } from "./cli-run.ts";
import { tierRequired } from "./conformance/suite.ts";

describe("kiln run --tier microvm", () => {
  let dir = "";
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "kiln-cli-microvm-"));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test("uname -r prints the guest kernel's release, not the host's", async (t) => {
    const doctor = await kiln(dir, ["doctor", "--json"], { guardMs: 120_000 });
    assertExit(doctor, 0);
    const status = (JSON.parse(doctor.stdout) as { tiers: TierStatus[] }).tiers.find(
      (s) => s.tier === "microvm",
    );
    if (!status?.available) {
      const why = `tier microvm unavailable: ${status?.reason ?? "not listed by doctor"}`;
      if (tierRequired("microvm")) assert.fail(`${why} (required by KILN_REQUIRE_TIERS)`);
      t.skip(why);
      return;
    }
    const guest = /guest kernel (\S+?),/.exec(status.reason)?.[1];
    assert.ok(guest, `doctor names no guest kernel: ${status.reason}`);
    assert.notEqual(guest, release(), "the guest kernel is the host's: the test proves nothing here");
    const r = await kiln(dir, ["run", "--tier", "microvm", "--", "uname", "-r"], { guardMs: 180_000 });
    assertExit(r, 0);
    assert.equal(r.stdout, `${guest}\n`);
  });
});
