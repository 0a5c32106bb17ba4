/** E2B's network fields as Kiln's policy: the mapping table of docs/e2b.md. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { resolveNetwork } from "../network/policy.ts";
import { e2bNetworkInfo, e2bNetworkPolicy } from "./network.ts";

const map = (aia: unknown, network: unknown, def: "none" | "all" = "none") =>
  e2bNetworkPolicy(aia, network, def);

test("allowOut, denyOut, ALL_TRAFFIC and allowInternetAccess map onto egress, allow and deny", () => {
  assert.deepEqual(map(undefined, undefined), { egress: "none" });
  assert.deepEqual(map(undefined, undefined, "all"), { egress: "all" });
  assert.deepEqual(map(undefined, { allowOut: ["a.test"], denyOut: ["0.0.0.0/0"] }, "all"), {
    egress: "none",
    allow: ["a.test"],
  });
  assert.deepEqual(map(false, { allowOut: ["0.0.0.0/0"] }), { egress: "all" });
  assert.deepEqual(map(true, { denyOut: ["10.0.0.0/8", "::/0"] }), { egress: "none", deny: ["10.0.0.0/8"] });
  assert.deepEqual(map(true, { denyOut: ["b.test"] }), { egress: "all", deny: ["b.test"] });
  assert.deepEqual(map(false, { allowPublicTraffic: true }, "all"), { egress: "none" });
  assert.deepEqual(
    map(undefined, {
      allowOut: ["a.test"],
      rules: {
        "a.test": [
          { transform: { headers: { A: "1", B: "2" } } },
          { transform: { headers: { A: "3" } } },
          {},
        ],
      },
    }),
    { egress: "none", allow: ["a.test"], headers: { "a.test": { A: "3", B: "2" } } },
  );
  for (const [aia, net, code] of [
    ["yes", undefined, "invalid_argument"],
    [undefined, { allowOut: "a.test" }, "invalid_argument"],
    [undefined, [], "invalid_argument"],
    [undefined, { egressProxy: { username: "u" } }, "invalid_argument"],
    [undefined, { egressProxy: { address: "p.test:1080", password: 7 } }, "invalid_argument"],
    [undefined, { rules: { "a.test": "x" } }, "invalid_argument"],
    [undefined, { httpsPorts: [3000] }, "unsupported"],
  ] as const)
    assert.throws(() => map(aia, net), { code });
});

test("egressProxy maps onto the upstream proxy (SOCKS5), shown without its password", () => {
  const options = map(undefined, {
    allowOut: ["a.test"],
    egressProxy: { address: "proxy.test:1080", username: "u", password: "pw" },
  });
  assert.deepEqual(options.upstreamProxy, { url: "socks5://proxy.test:1080", username: "u", password: "pw" });
  const settings = resolveNetwork(options);
  assert.deepEqual(e2bNetworkInfo(settings).egressProxy, { address: "proxy.test:1080", username: "u" });
  assert.equal(JSON.stringify(e2bNetworkInfo(settings)).includes("pw"), false);
  assert.equal(e2bNetworkInfo(resolveNetwork({ allow: ["a.test"] })).egressProxy, undefined);
});

test("getInfo's shape: deny-all shown as ALL_TRAFFIC in denyOut", () => {
  assert.deepEqual(e2bNetworkInfo({ egress: "none", allow: ["a.test"], deny: [] }), {
    allowInternetAccess: false,
    allowOut: ["a.test"],
    denyOut: ["0.0.0.0/0"],
  });
  assert.deepEqual(e2bNetworkInfo({ egress: "all", allow: [], deny: ["b.test"] }), {
    allowInternetAccess: true,
    allowOut: [],
    denyOut: ["b.test"],
  });
});
