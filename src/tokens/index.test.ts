import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { test } from "node:test";
import fc from "fast-check";
import { resolveLimits } from "../core/limits.ts";
import type { SandboxInfo } from "../core/types.ts";
import { SandboxTokens } from "./index.ts";

function record(id: string, owner: string, createdAt = "2026-01-01T00:00:00.000Z"): SandboxInfo {
  return {
    id,
    tier: "virtual",
    template: "default",
    state: "running",
    env: {},
    cwd: "/workspace",
    metadata: { "kiln.owner": owner },
    limits: resolveLimits(),
    network: { egress: "none", allow: [], deny: [] },
    ports: { expose: "all", public: [] },
    volumes: [],
    createdAt,
    expiresAt: null,
  };
}

function service(records: Map<string, SandboxInfo>, revoked: Set<string>, now = () => 1_000_000) {
  return new SandboxTokens({
    secret: randomBytes(32),
    record: (id) => records.get(id),
    ownerActive: (owner) => !revoked.has(owner),
    now,
  });
}

const A = "sb_aaaaaaaaaaaaaaaaaaaa";
const B = "sb_bbbbbbbbbbbbbbbbbbbb";

test("a token is bound to its sandbox, its purpose, its expiry and its owner's key", () => {
  const records = new Map([
    [A, record(A, "key_1")],
    [B, record(B, "key_1")],
  ]);
  const revoked = new Set<string>();
  let now = 1_000_000;
  const t = service(records, revoked, () => now);
  const envd = t.issue(records.get(A)!, "e2b-envd");
  assert.equal(t.check(envd, A, "e2b-envd").id, A);
  assert.equal(envd, t.issue(records.get(A)!, "e2b-envd"), "deterministic (E2B signs with it)");
  const code = (f: () => unknown) => assert.throws(f, (e: { code?: string }) => e.code === "not_found");
  code(() => t.check(envd, B, "e2b-envd"));
  code(() => t.check(envd, A, "port:8080"));
  code(() => t.check(undefined, A, "e2b-envd"));
  code(() => t.check("kt1.e2b-envd.s.", A, "e2b-envd"));

  const port = t.issue(records.get(A)!, "port:8080", now + 1000);
  assert.equal(t.check(port, A, "port:8080").id, A);
  code(() => t.check(port, A, "port:8081"));
  // Changing the expiry in the token breaks its MAC.
  code(() => t.check(port.replace(/\.[0-9a-z]+\./, `.${(now + 10_000_000).toString(36)}.`), A, "port:8080"));
  now += 1000;
  code(() => t.check(port, A, "port:8080"));

  // A later sandbox under the same id does not inherit the token.
  records.set(A, record(A, "key_1", "2026-02-01T00:00:00.000Z"));
  code(() => t.check(envd, A, "e2b-envd"));
  const fresh = t.issue(records.get(A)!, "e2b-envd");
  assert.equal(t.check(fresh, A, "e2b-envd").id, A);
  // Revoking the key ends it; deleting the sandbox ends it.
  revoked.add("key_1");
  code(() => t.check(fresh, A, "e2b-envd"));
  revoked.clear();
  records.delete(A);
  code(() => t.check(fresh, A, "e2b-envd"));
});

test("no token made of arbitrary text passes", () => {
  const records = new Map([[A, record(A, "key_1")]]);
  const t = service(records, new Set());
  fc.assert(
    fc.property(fc.string(), fc.constantFrom("e2b-envd", "port:80") as fc.Arbitrary<"e2b-envd">, (s, p) => {
      assert.throws(() => t.check(s, A, p));
    }),
  );
});
