/**
 * `network_update` takes the policy REST `PUT /v1/sandboxes/{id}/network`
 * takes: the MCP input shape and the REST body schema accept and refuse the
 * same inputs, field by field.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { z } from "zod";
import { networkShape } from "../../src/mcp/schemas.ts";
import { NetworkSchema } from "../../src/server/schemas.ts";

const mcp = z.object(networkShape).strict();

const accepted: unknown[] = [
  {},
  { egress: "all", deny: ["*.ads.test", "10.0.0.0/8"] },
  { allow: ["files.test:443"], secrets: { K: { value: "v", hosts: ["api.test"] } } },
  { secrets: { K: { value: "v", hosts: ["api.test"], headers: ["authorization"] } } },
  { headers: { "*.api.test": { Authorization: "Bearer x" } } },
  { upstreamProxy: "socks5://u:p@127.0.0.1:1080" },
  { upstreamProxy: { url: "http://127.0.0.1:3128", username: "u", password: "p" } },
  { limits: { maxConnections: 4 } },
  { limits: { maxConnections: 4, maxBytesPerSecond: 65536 } },
];

const refused: unknown[] = [
  { egress: "some" },
  { allow: "files.test" },
  { allow: [1] },
  { secrets: { K: { value: "v" } } },
  { secrets: { K: { value: 1, hosts: [] } } },
  { secrets: { K: { value: "v", hosts: [], extra: 1 } } },
  { headers: { "api.test": "x" } },
  { headers: { "api.test": { A: 1 } } },
  { upstreamProxy: 1 },
  { upstreamProxy: { url: "http://x", token: "t" } },
  { upstreamProxy: { username: "u" } },
  { limits: { maxConnections: 1.5 } },
  { limits: { burst: 1 } },
  { limits: 5 },
  { bogus: true },
];

test("the MCP network_update shape accepts what REST accepts", () => {
  for (const input of accepted) {
    assert.equal(NetworkSchema.safeParse(input).success, true, `REST refused ${JSON.stringify(input)}`);
    assert.equal(mcp.safeParse(input).success, true, `MCP refused ${JSON.stringify(input)}`);
  }
});

test("the MCP network_update shape refuses what REST refuses", () => {
  for (const input of refused) {
    assert.equal(NetworkSchema.safeParse(input).success, false, `REST accepted ${JSON.stringify(input)}`);
    assert.equal(mcp.safeParse(input).success, false, `MCP accepted ${JSON.stringify(input)}`);
  }
});

test("the MCP shape has exactly REST's fields", () => {
  assert.deepEqual(Object.keys(networkShape).sort(), Object.keys(NetworkSchema.shape).sort());
});
