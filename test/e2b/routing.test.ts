/**
 * Authentication, routing and tier selection of the E2B handler (virtual
 * tier), through the unmodified `e2b` SDK and raw HTTP where the SDK cannot
 * express the case (a forged envd token).
 */
import assert from "node:assert/strict";
import { request as httpRequest } from "node:http";
import { after, before, describe, test } from "node:test";
import { AuthenticationError, Sandbox, SandboxError } from "e2b";
import { commandLine } from "../../src/e2b/envd/process.ts";
import { checkTemplateOnTier, resolveTemplate, templateOnTier } from "../../src/e2b/mapping.ts";
import { type E2bFixture, e2bFixture, KEYS, rejectsWith } from "./suite.ts";

describe("e2b handler: auth, routing, tiers", () => {
  let fx: E2bFixture;
  let sb: Sandbox;
  let token: string;

  before(async () => {
    fx = await e2bFixture();
    sb = await Sandbox.create(fx.opts());
    const res = await fetch(`${fx.server.url}/v2/sandboxes/${sb.sandboxId}/connect`, {
      method: "POST",
      headers: { "x-api-key": KEYS.alice, "content-type": "application/json" },
      body: "{}",
    });
    token = ((await res.json()) as { envdAccessToken: string }).envdAccessToken;
  });

  after(async () => {
    await fx?.dispose();
  });

  test("a wrong API key is the SDK's AuthenticationError", async () => {
    await rejectsWith(Sandbox.create({ ...fx.opts(), apiKey: "wrong" }), AuthenticationError);
    await rejectsWith(Sandbox.list({ ...fx.opts(), apiKey: "wrong" }).nextItems(), AuthenticationError);
    await rejectsWith(Sandbox.getInfo(sb.sandboxId, { ...fx.opts(), apiKey: "wrong" }), AuthenticationError);
    await rejectsWith(Sandbox.connect(sb.sandboxId, { ...fx.opts(), apiKey: "wrong" }), AuthenticationError);
  });

  test("the SDK can be pointed at Kiln with its environment variables", async () => {
    const saved = { ...process.env };
    try {
      process.env.E2B_API_URL = fx.server.url;
      process.env.E2B_SANDBOX_URL = fx.server.url;
      process.env.E2B_API_KEY = KEYS.alice;
      const viaEnv = await Sandbox.create();
      assert.equal((await viaEnv.commands.run("echo env")).stdout, "env\n");
      await viaEnv.kill();
    } finally {
      for (const k of ["E2B_API_URL", "E2B_SANDBOX_URL", "E2B_API_KEY"]) {
        if (saved[k] === undefined) delete process.env[k];
        else process.env[k] = saved[k];
      }
    }
  });

  test("envd calls need the sandbox's access token", async () => {
    const stat = (headers: Record<string, string>) =>
      fetch(`${fx.server.url}/filesystem.Filesystem/Stat`, {
        method: "POST",
        headers: { "content-type": "application/json", "e2b-sandbox-id": sb.sandboxId, ...headers },
        body: JSON.stringify({ path: "/workspace" }),
      });
    assert.equal((await stat({ "x-access-token": token })).status, 200);
    // A refused token gets the answer a missing sandbox gets (no existence oracle).
    const forged = await stat({ "x-access-token": "forged" });
    assert.equal(forged.status, 502);
    assert.equal(((await forged.json()) as { code: string }).code, "unavailable");
    assert.equal((await stat({})).status, 502);
    // The token is bound to its sandbox.
    const other = await Sandbox.create(fx.opts());
    const cross = await fetch(`${fx.server.url}/health`, {
      headers: { "e2b-sandbox-id": other.sandboxId, "x-access-token": token },
    });
    assert.equal(cross.status, 502);
    await other.kill();
  });

  test("envd requests route by E2b-Sandbox-Id, or by a 49983-<id>.<domain> host", async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const u = new URL(fx.server.url);
      const req = httpRequest(
        {
          host: u.hostname,
          port: u.port,
          path: "/health",
          headers: { host: `49983-${sb.sandboxId}.kiln.test`, "x-access-token": token },
        },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on("error", reject);
      req.end();
    });
    assert.equal(status, 204);
    // Without a sandbox id the same path is the REST API's (which needs an API key).
    assert.equal((await fetch(`${fx.server.url}/health`)).status, 401);
  });

  test("a tier prefix on the template selects the tier; conflicting selections are refused", async () => {
    const v = await Sandbox.create("virtual/base", fx.opts());
    assert.equal((await fx.kiln.connect(v.sandboxId).then((s) => s.info())).tier, "virtual");
    await v.kill();
    const e = await rejectsWith(
      Sandbox.create("namespace/base", { ...fx.opts(), metadata: { "kiln.tier": "virtual" } }),
      SandboxError,
    );
    assert.equal(e.statusCode, 400);
  });

  test("lifecycle onTimeout pause: the end of the lifetime pauses the sandbox; connect resumes it", async () => {
    const s = await Sandbox.create({ ...fx.opts(), timeoutMs: 1000, lifecycle: { onTimeout: "pause" } });
    await s.files.write("/workspace/auto.txt", "kept");
    let state = "";
    for (let i = 0; i < 600 && state !== "paused"; i++) {
      await new Promise((r) => setTimeout(r, 100));
      state = (await Sandbox.getInfo(s.sandboxId, fx.opts())).state;
    }
    assert.equal(state, "paused");
    const again = await Sandbox.connect(s.sandboxId, fx.opts());
    assert.equal(await again.files.read("/workspace/auto.txt"), "kept");
    const info = await again.getInfo();
    assert.equal(info.state, "running");
    assert.ok(info.endAt.getTime() > Date.now(), "a resumed sandbox has a lifetime again");
    await again.kill();
  });

  test("unsupported calls fail with a clear status", async () => {
    const e = await rejectsWith(
      Sandbox.updateNetwork(sb.sandboxId, { egressProxy: { address: "" } }, fx.opts()),
      SandboxError,
    );
    assert.equal(e.statusCode, 400);
  });

  test("resolveTemplate, checkTemplateOnTier and commandLine", async () => {
    assert.deepEqual(resolveTemplate(undefined, {}, "virtual"), { tier: "virtual", template: "default" });
    assert.deepEqual(resolveTemplate("base", { "kiln.tier": "namespace" }, "virtual"), {
      tier: "namespace",
      template: "default",
    });
    assert.deepEqual(resolveTemplate("gvisor/python", {}, "virtual"), { tier: "gvisor", template: "python" });
    assert.throws(() => resolveTemplate("acme/tpl", {}, "namespace"), { code: "not_found" });
    // A tier without templates (its capabilities say so) has one environment: `base` only.
    const { tier, template } = resolveTemplate("python-data", {}, "virtual");
    await assert.rejects(checkTemplateOnTier(fx.kiln, tier, template), { code: "not_found" });
    // @e2b/code-interpreter's default template is Kiln's code-interpreter; a tier without templates runs its own.
    assert.deepEqual(resolveTemplate("code-interpreter-v1", { "kiln.tier": "namespace" }, "virtual"), {
      tier: "namespace",
      template: "code-interpreter",
    });
    assert.equal(await templateOnTier(fx.kiln, "virtual", "code-interpreter"), "default");
    await checkTemplateOnTier(fx.kiln, "virtual", "default");
    assert.throws(() => resolveTemplate("base", { "kiln.tier": "nope" }, "virtual"), {
      code: "invalid_argument",
    });
    assert.equal(commandLine("/bin/bash", ["-l", "-c", "echo $HOME | wc"]), "echo $HOME | wc");
    assert.equal(
      commandLine("/usr/bin/python3", ["-c", "print('x y')"]),
      "/usr/bin/python3 -c 'print('\\''x y'\\'')'",
    );
  });
});
