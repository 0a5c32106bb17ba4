/**
 * `kiln port ID PORT`: the address where `kiln serve` serves a sandbox's
 * port (Host form with a domain, else the path form), a per-port token the
 * server accepts, and typed errors for a tier without ports, an unexposed
 * port and a bad port. The real tier is namespace (skipped with its reason
 * where it cannot run).
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { Kiln } from "../../src/index.ts";
import { KeyStore } from "../../src/server/keys.ts";
import { serverTokens } from "../../src/server/tokens.ts";
import { kiln, show } from "../cli-run.ts";
import { tierRequired } from "../conformance/suite.ts";

describe("kiln port", () => {
  let dir: string;
  let id: string;
  let unavailable: string | undefined;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "kiln-port-cli-"));
    const k = await Kiln.open({ dataDir: dir });
    try {
      const status = (await k.doctor()).find((s) => s.tier === "namespace");
      if (!status?.available) {
        unavailable = `tier namespace unavailable: ${status?.reason}`;
        if (tierRequired("namespace")) throw new Error(`${unavailable} (required by KILN_REQUIRE_TIERS)`);
        console.log(`# SKIP ${unavailable}`);
        return;
      }
      const sb = await k.create({ tier: "namespace", ports: { expose: [8000, 8080] } });
      id = sb.id;
    } finally {
      await k.close();
    }
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test("prints the Host form with a domain, the path form without, and a token the server accepts", async (t) => {
    if (unavailable) return t.skip(unavailable);
    const withDomain = await kiln(dir, ["port", id, "8000", "--domain", "Sandboxes.Example.com"]);
    assert.equal(withDomain.code, 0, show(withDomain));
    assert.equal(withDomain.stdout, `8000-${id}.sandboxes.example.com\n`);
    const path = await kiln(dir, ["port", id, "8080", "--server", "http://127.0.0.1:9999"]);
    assert.equal(path.stdout, `http://127.0.0.1:9999/v1/sandboxes/${id}/ports/8080/proxy/\n`);
    const json = await kiln(dir, ["--json", "port", id, "8000", "--token"]);
    assert.equal(json.code, 0, show(json));
    const out = JSON.parse(json.stdout) as { access: string; token: string };
    assert.equal(out.access, "auth");
    const k = await Kiln.open({ dataDir: dir });
    const keys = new KeyStore(dir);
    try {
      const tokens = serverTokens(k, keys);
      assert.equal(tokens.check(out.token, id, "port:8000").id, id);
      assert.throws(
        () => tokens.check(out.token, id, "port:8080"),
        (e: { code?: string }) => e.code === "not_found",
      );
    } finally {
      keys.close();
      await k.close();
    }
  });

  test("typed errors: unexposed port, bad port, a tier without ports", async (t) => {
    if (unavailable) return t.skip(unavailable);
    const err = async (args: string[]) => {
      const r = await kiln(dir, ["--json", ...args]);
      assert.notEqual(r.code, 0, show(r));
      return (JSON.parse(r.stderr) as { error: { code: string } }).error.code;
    };
    assert.equal(await err(["port", id, "9000"]), "not_found");
    assert.equal(await err(["port", id, "0"]), "invalid_argument");
    assert.equal(await err(["port", id, "http"]), "invalid_argument");
    const v = await kiln(dir, ["create"]);
    assert.equal(await err(["port", v.stdout.trim(), "8000"]), "unsupported");
  });
});
