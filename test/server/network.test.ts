/**
 * A running sandbox's network policy through the REST API, the client SDK and
 * the CLI (`kiln network show|set`, locally and through `--server`): the same
 * checked, canonical policy, the change in the audit log, bad rules refused
 * with nothing changed.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { KilnClient } from "../../src/client/index.ts";
import { kiln as cli } from "../cli-run.ts";
import { assertError, body, type TestServer, testServer } from "./helpers.ts";

let t: TestServer;
before(async () => {
  t = await testServer();
});
after(() => t.dispose());

test("REST and the client SDK: PUT replaces the policy, GET shows it, bad rules change nothing", async () => {
  const client = await KilnClient.open({ url: t.server.url, apiKey: t.key });
  try {
    const sb = await client.create({ network: { allow: ["files.test"] } });
    assert.equal((await sb.commands.run("echo up")).stdout, "up\n");
    const put = await t.req("PUT", `/v1/sandboxes/${sb.id}/network`, {
      json: { egress: "all", deny: ["Other.Test"] },
    });
    assert.equal(put.status, 200);
    assert.deepEqual(await body(put), { egress: "all", allow: [], deny: ["other.test"] });
    assert.deepEqual(await sb.network.get(), { egress: "all", allow: [], deny: ["other.test"] });
    await assertError(
      await t.req("PUT", `/v1/sandboxes/${sb.id}/network`, { json: { allow: ["a..b"] } }),
      "invalid_argument",
      400,
    );
    await assert.rejects(sb.network.update({ egress: "some" as "all" }), { code: "invalid_argument" });
    assert.deepEqual((await sb.info()).network, { egress: "all", allow: [], deny: ["other.test"] });
    assert.deepEqual(await sb.network.update({ allow: ["x.test:443"] }), {
      egress: "none",
      allow: ["x.test:443"],
      deny: [],
    });
    const changes = (await sb.networkLogs()).filter((e) => e.kind === "policy").map((e) => e.rule);
    assert.deepEqual(changes, ["egress all; deny other.test", "egress none; allow x.test:443"]);
    await assertError(
      await t.req("PUT", "/v1/sandboxes/sb_00000000000000000000/network", { json: {} }),
      "not_found",
      404,
    );
    await sb.kill();
  } finally {
    await client.close();
  }
});

test("the CLI: kiln network set replaces the policy, show prints it, locally and through --server", async () => {
  const created = JSON.parse(
    (await cli(t.dataDir, ["--json", "create", "--allow-host", "files.test"])).stdout,
  ) as { id: string };
  const set = await cli(t.dataDir, ["--json", "network", "set", created.id, "--allow-host", "B.test:8443"]);
  assert.equal(set.code, 0, set.stderr);
  assert.deepEqual(JSON.parse(set.stdout), { egress: "none", allow: ["b.test:8443"], deny: [] });
  const bad = await cli(t.dataDir, ["--json", "network", "set", created.id, "--allow-host", "a..b"]);
  assert.notEqual(bad.code, 0);
  assert.equal(JSON.parse(bad.stderr || bad.stdout).error.code, "invalid_argument");
  const shown = await cli(t.dataDir, ["network", "show", created.id]);
  assert.equal(shown.stdout, "egress: none\nallow: b.test:8443\ndeny: -\n");

  // Through the server that has it open: the running sandbox's path out changes there.
  const client = await KilnClient.open({ url: t.server.url, apiKey: t.key });
  try {
    const sb = await client.create({});
    process.env.KILN_API_KEY = t.key;
    const remote = await cli(t.dataDir, [
      "--json",
      "network",
      "set",
      sb.id,
      "--allow-all-egress",
      "--deny-host",
      "10.0.0.0/8",
      "--server",
      t.server.url,
    ]);
    delete process.env.KILN_API_KEY;
    assert.equal(remote.code, 0, remote.stderr);
    assert.deepEqual(await sb.network.get(), { egress: "all", allow: [], deny: ["10.0.0.0/8"] });
    await sb.kill();
  } finally {
    await client.close();
  }
});

test("secrets and header rules: the API takes their values and never answers them", async () => {
  const value = "sk-never-answered-0123456789";
  const created = await t.req("POST", "/v1/sandboxes", {
    json: {
      network: {
        allow: ["api.test"],
        secrets: { API_KEY: { value, hosts: ["API.test"], headers: ["Authorization"] } },
        headers: { "*.api.test": { "X-Token": `${value}-header` } },
      },
    },
  });
  assert.equal(created.status, 201);
  const { id } = await body(created);
  const shown = await body(t.req("GET", `/v1/sandboxes/${id}/network`));
  assert.deepEqual(shown.headers, { "*.api.test": ["x-token"] });
  assert.deepEqual(shown.secrets.API_KEY.hosts, ["api.test"]);
  assert.match(shown.secrets.API_KEY.placeholder, /^KILN_SECRET_API_KEY_[0-9a-f]{32}$/);
  for (const path of [`/v1/sandboxes/${id}`, `/v1/sandboxes/${id}/network`, "/v1/sandboxes"])
    assert.ok(!(await (await t.req("GET", path)).text()).includes(value), path);
  // An update that keeps the name keeps the placeholder (the sandbox's $API_KEY stays good).
  const updated = await body(
    t.req("PUT", `/v1/sandboxes/${id}/network`, {
      json: { allow: ["api.test"], secrets: { API_KEY: { value: `${value}-2`, hosts: ["api.test"] } } },
    }),
  );
  assert.equal(updated.secrets.API_KEY.placeholder, shown.secrets.API_KEY.placeholder);
  assert.equal(updated.headers, undefined);
  await assertError(
    await t.req("PUT", `/v1/sandboxes/${id}/network`, {
      json: { secrets: { API_KEY: { value: "x", hosts: ["10.0.0.0/8"] } } },
    }),
    "invalid_argument",
    400,
  );
  await t.req("DELETE", `/v1/sandboxes/${id}`);
});

test("the CLI's --secret takes the value from its own environment, never its command line", async () => {
  const created = JSON.parse((await cli(t.dataDir, ["--json", "create"])).stdout) as { id: string };
  process.env.KILN_TEST_TOKEN = "sk-from-the-environment-42";
  try {
    const set = await cli(t.dataDir, [
      "network",
      "set",
      created.id,
      "--allow-host",
      "files.test",
      "--secret",
      "KILN_TEST_TOKEN@files.test",
    ]);
    assert.equal(set.code, 0, set.stderr);
    assert.match(set.stdout, /^secret: \$KILN_TEST_TOKEN -> files\.test$/m);
    assert.doesNotMatch(set.stdout, /sk-from-the-environment/);
  } finally {
    delete process.env.KILN_TEST_TOKEN;
  }
  const unset = await cli(t.dataDir, [
    "--json",
    "network",
    "set",
    created.id,
    "--secret",
    "KILN_TEST_TOKEN@files.test",
  ]);
  assert.notEqual(unset.code, 0);
  assert.equal(JSON.parse(unset.stderr).error.code, "invalid_argument");
  const shown = await cli(t.dataDir, ["--json", "network", "show", created.id]);
  assert.match(JSON.parse(shown.stdout).secrets.KILN_TEST_TOKEN.placeholder, /^KILN_SECRET_KILN_TEST_TOKEN_/);
});

test("upstream proxy and caps: the API takes the proxy's password and never answers it; bad caps change nothing", async () => {
  const password = "proxy-pw-never-answered";
  const created = await t.req("POST", "/v1/sandboxes", {
    json: {
      network: {
        allow: ["api.test"],
        upstreamProxy: { url: "socks5://proxy.test:1080", username: "u", password },
        limits: { maxConnections: 8, maxBytesPerSecond: 65_536 },
      },
    },
  });
  assert.equal(created.status, 201);
  const { id } = await body(created);
  const shown = await body(t.req("GET", `/v1/sandboxes/${id}/network`));
  assert.deepEqual(shown.upstreamProxy, { url: "socks5://proxy.test:1080", username: "u" });
  assert.deepEqual(shown.limits, { maxConnections: 8, maxBytesPerSecond: 65_536 });
  for (const path of [`/v1/sandboxes/${id}`, `/v1/sandboxes/${id}/network`, "/v1/sandboxes"])
    assert.ok(!(await (await t.req("GET", path)).text()).includes(password), path);
  for (const bad of [
    { allow: ["api.test"], limits: { maxConnections: 0 } },
    { allow: ["api.test"], limits: { maxBytesPerSecond: 10 } },
    { allow: ["api.test"], upstreamProxy: "ftp://proxy.test" },
  ])
    await assertError(
      await t.req("PUT", `/v1/sandboxes/${id}/network`, { json: bad }),
      "invalid_argument",
      400,
    );
  assert.deepEqual((await body(t.req("GET", `/v1/sandboxes/${id}/network`))).limits, {
    maxConnections: 8,
    maxBytesPerSecond: 65_536,
  });
  // The CLI: the password from its environment, never its command line.
  process.env.KILN_UPSTREAM_PROXY_PASSWORD = password;
  process.env.KILN_API_KEY = t.key;
  try {
    const set = await cli(t.dataDir, [
      "--json",
      "network",
      "set",
      id,
      "--server",
      t.server.url,
      "--allow-host",
      "api.test",
      "--upstream-proxy",
      "http://cli-user@proxy.test:3128",
      "--max-connections",
      "4",
    ]);
    assert.equal(set.code, 0, set.stderr);
    assert.ok(!set.stdout.includes(password));
  } finally {
    delete process.env.KILN_UPSTREAM_PROXY_PASSWORD;
    delete process.env.KILN_API_KEY;
  }
  const after = await body(t.req("GET", `/v1/sandboxes/${id}/network`));
  assert.deepEqual(after.upstreamProxy, { url: "http://proxy.test:3128", username: "cli-user" });
  assert.deepEqual(after.limits, { maxConnections: 4 });
  await t.req("DELETE", `/v1/sandboxes/${id}`);
});
