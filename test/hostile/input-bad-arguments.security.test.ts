/**
 * Bad input is refused at the door, by the library and by the REST server,
 * as `invalid_argument` (HTTP 400), and leaves nothing behind: timeouts past
 * what a timer can hold (or not finite), environment variables no process
 * could receive, and tar uploads that are not tar archives (nothing of a
 * failed import stays, whether it was to make a new folder or to add to one).
 * The tar cases run on every tier, one line each (KILN_REQUIRE_TIERS makes a
 * named tier's absence a failure).
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import * as tarStream from "tar-stream";
import { Kiln, MAX_COMMAND_TIMEOUT_MS, type Sandbox, type TierName } from "../../src/index.ts";
import { rejectsWithCode, tierRequired } from "../conformance/suite.ts";
import { assertError, body, type TestServer, testServer } from "../server/helpers.ts";

/** The environments no process could be given. */
const BAD_ENVS: Record<string, string>[] = [{ "A=B": "c" }, { "": "x" }, { "A\0B": "x" }, { A: "x\0y" }];

/** Lifetimes no date can hold, or no number at all. */
const BAD_LIFETIMES = [1e20, Number.POSITIVE_INFINITY, Number.NaN, -1];
/** Command time limits a timer cannot hold. */
const BAD_TIMEOUTS = [2 ** 31, ...BAD_LIFETIMES];

/** A tar archive whose first member is whole and whose next header is garbage. */
async function halfTar(): Promise<Uint8Array> {
  const pack = tarStream.pack();
  pack.entry({ name: "first.txt" }, "first\n");
  pack.entry({ name: "sub/", type: "directory" });
  pack.entry({ name: "sub/second.txt" }, "second\n");
  pack.finalize();
  const parts: Buffer[] = [];
  for await (const c of pack as AsyncIterable<Buffer>) parts.push(c);
  const whole = Buffer.concat(parts);
  // Keep the first member (header + one data block), then 1 KiB of noise where the next header was.
  return Buffer.concat([whole.subarray(0, 1024), Buffer.alloc(1024, 0x41)]);
}

const GARBAGE = new Uint8Array(Buffer.alloc(3000, "not a tar archive at all "));

describe("bad input at the library's door", () => {
  let dir = "";
  let kiln: Kiln;
  let sb: Sandbox;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "kiln-input-"));
    kiln = await Kiln.open({ dataDir: dir });
    sb = await kiln.create();
  });
  after(async () => {
    await kiln.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test("a command timeoutMs past 2^31-1 ms or not finite is invalid_argument; the maximum itself runs", async () => {
    assert.equal(MAX_COMMAND_TIMEOUT_MS, 2 ** 31 - 1);
    for (const timeoutMs of BAD_TIMEOUTS)
      await rejectsWithCode(sb.commands.run("echo hi", { timeoutMs }), "invalid_argument");
    const r = await sb.commands.run("echo hi", { timeoutMs: MAX_COMMAND_TIMEOUT_MS });
    assert.equal(r.stdout, "hi\n");
  });

  test("create and setLifetime refuse a lifetime or a command time limit a timer cannot hold; nothing is created", async () => {
    const before = (await kiln.list()).length;
    for (const timeoutMs of BAD_TIMEOUTS)
      await rejectsWithCode(kiln.create({ limits: { timeoutMs } }), "invalid_argument");
    for (const lifetimeMs of BAD_LIFETIMES) {
      await rejectsWithCode(kiln.create({ lifetimeMs }), "invalid_argument");
      assert.throws(
        () => kiln.setLifetime(sb.id, lifetimeMs),
        (e: { code?: string }) => e.code === "invalid_argument",
      );
    }
    assert.equal((await kiln.list()).length, before, "a refused create left a sandbox");
  });

  test("env keys with '=' or NUL or empty, and NUL in values, are invalid_argument at create and at run; nothing is created", async () => {
    const before = (await kiln.list()).length;
    for (const env of BAD_ENVS) {
      await rejectsWithCode(kiln.create({ env }), "invalid_argument");
      await rejectsWithCode(sb.commands.run("true", { env }), "invalid_argument");
    }
    assert.equal((await kiln.list()).length, before, "a refused create left a sandbox");
    assert.equal((await sb.commands.run("echo ok")).stdout, "ok\n", "the sandbox stopped working");
  });
});

/** The failed-import cases, against one tier. */
function runFailedImport(tier: TierName): void {
  describe(`a failed tar import leaves nothing (${tier})`, () => {
    let dir = "";
    let kiln: Kiln;
    let sb: Sandbox | undefined;
    let unavailable: string | undefined;
    before(async () => {
      dir = mkdtempSync(join(tmpdir(), `kiln-input-tar-${tier}-`));
      kiln = await Kiln.open({ dataDir: dir });
      const status = (await kiln.doctor()).find((s) => s.tier === tier);
      if (!status?.available) {
        unavailable = `tier ${tier} unavailable: ${status?.reason ?? "not listed by doctor"}`;
        if (tierRequired(tier)) throw new Error(`${unavailable} (required by KILN_REQUIRE_TIERS)`);
        console.log(`# SKIP ${unavailable}`);
        return;
      }
      sb = await kiln.create({ tier });
    });
    after(async () => {
      await kiln.close();
      rmSync(dir, { recursive: true, force: true });
    });

    test("garbage or a half-good archive into a new folder: invalid_argument, and no folder", async (t) => {
      if (!sb) return t.skip(unavailable);
      for (const tar of [GARBAGE, await halfTar()]) {
        await rejectsWithCode(sb.files.importTar("/workspace/fresh/deeper", tar), "invalid_argument");
        assert.equal(await sb.files.exists("/workspace/fresh"), false, "a partial folder was left");
      }
      const names = (await sb.files.list("/workspace")).map((e) => e.name);
      assert.deepEqual(
        names.filter((n) => n.startsWith(".kiln")),
        [],
        "a temporary folder was left",
      );
    });

    test("a half-good archive into an existing folder: invalid_argument, and the folder as it was", async (t) => {
      if (!sb) return t.skip(unavailable);
      await sb.files.write("/workspace/keep/old.txt", "old\n");
      await rejectsWithCode(sb.files.importTar("/workspace/keep", await halfTar()), "invalid_argument");
      assert.deepEqual(
        (await sb.files.list("/workspace/keep")).map((e) => e.name),
        ["old.txt"],
      );
      // A good archive still adds to the folder.
      const pack = tarStream.pack();
      pack.entry({ name: "new.txt" }, "new\n");
      pack.finalize();
      await sb.files.importTar("/workspace/keep", ReadableStream.from(pack as AsyncIterable<Uint8Array>));
      assert.deepEqual((await sb.files.list("/workspace/keep")).map((e) => e.name).sort(), [
        "new.txt",
        "old.txt",
      ]);
      assert.equal(await sb.files.read("/workspace/keep/old.txt"), "old\n");
    });
  });
}

runFailedImport("virtual");
runFailedImport("namespace");
runFailedImport("oci");
runFailedImport("gvisor");
runFailedImport("microvm");

describe("bad input at the REST server's door", () => {
  let t: TestServer;
  let id: string;
  before(async () => {
    t = await testServer();
    id = (await body(t.req("POST", "/v1/sandboxes", { json: {} }))).id;
  });
  after(() => t.dispose());

  /** The owner's list, as the server renders it. */
  const listed = async () => JSON.stringify(await body(t.req("GET", "/v1/sandboxes")));

  test("create with timeoutMs 1e20, a command time limit past 2^31-1 ms, or a bad env: 400 invalid_argument, nothing created", async () => {
    const before = await listed();
    const bad = [
      { timeoutMs: 1e20 },
      { limits: { timeoutMs: 2 ** 31 } },
      { limits: { timeoutMs: 1e20 } },
      ...BAD_ENVS.map((env) => ({ env })),
    ];
    for (const json of bad)
      await assertError(await t.req("POST", "/v1/sandboxes", { json }), "invalid_argument", 400);
    assert.equal(await listed(), before, "a refused create left a sandbox");
    await assertError(
      await t.req("POST", `/v1/sandboxes/${id}/lifetime`, { json: { lifetimeMs: 1e20 } }),
      "invalid_argument",
      400,
    );
  });

  test("a command with timeoutMs past 2^31-1 ms or a bad env: 400 invalid_argument", async () => {
    for (const json of [
      { command: "echo hi", timeoutMs: 2 ** 31 },
      { command: "echo hi", timeoutMs: 1e20 },
      ...BAD_ENVS.map((env) => ({ command: "echo hi", env })),
    ])
      await assertError(
        await t.req("POST", `/v1/sandboxes/${id}/commands`, { json }),
        "invalid_argument",
        400,
      );
  });

  test("a tar upload of garbage: 400 invalid_argument, and no folder", async () => {
    for (const tar of [GARBAGE, await halfTar()]) {
      await assertError(
        await t.req("PUT", `/v1/sandboxes/${id}/files/tar?path=/workspace/up`, { body: tar }),
        "invalid_argument",
        400,
      );
      await assertError(
        await t.req("GET", `/v1/sandboxes/${id}/files/stat?path=/workspace/up`),
        "not_found",
        404,
      );
    }
  });
});
