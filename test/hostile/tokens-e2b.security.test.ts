/**
 * Hostile cases for the sandbox-scoped credentials of the E2B surface, against
 * a real `kiln serve` driven by the unmodified `e2b` SDK:
 *  - a revoked key's envd access tokens stop working at the next request
 *    (revoked by the real CLI, `kiln keys revoke`, in another process);
 *  - deleting a sandbox ends its tokens;
 *  - `timeout: 0` never means "forever": lifetimes have the server's maximum;
 *  - envd answers a sandbox of another owner exactly as one that does not exist.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { Sandbox } from "e2b";
import { type RunningServer, startServer } from "../../src/server/index.ts";

const MAIN = join(import.meta.dirname, "..", "..", "src", "cli", "main.ts");
const HOUR_MS = 3_600_000;

/** Runs the real CLI on a data directory; resolves with its exit code. */
function cli(dataDir: string, args: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MAIN, "--data-dir", dataDir, ...args], {
      stdio: ["ignore", "ignore", "inherit"],
    });
    child.once("error", reject);
    child.once("exit", (code) => resolve(code ?? -1));
  });
}

/** A raw envd request, as the SDK sends them (sandbox id header, access token header). */
async function envd(
  url: string,
  sandboxId: string,
  token: string | undefined,
  what: "files" | "health" | "rpc",
): Promise<{ status: number; body: string }> {
  const headers: Record<string, string> = { "e2b-sandbox-id": sandboxId };
  if (token !== undefined) headers["x-access-token"] = token;
  let res: Response;
  if (what === "files") {
    res = await fetch(`${url}/files?path=/workspace/hello.txt`, { headers });
  } else if (what === "health") {
    res = await fetch(`${url}/health`, { headers });
  } else {
    res = await fetch(`${url}/process.Process/List`, {
      method: "POST",
      headers: { ...headers, "content-type": "application/json", "connect-protocol-version": "1" },
      body: "{}",
    });
  }
  return { status: res.status, body: await res.text() };
}

/** A response with the sandbox id replaced, so that answers about two ids can be compared. */
function shape(r: { status: number; body: string }, id: string): { status: number; body: string } {
  return { status: r.status, body: r.body.replaceAll(id, "<id>") };
}

describe("E2B tokens (kiln serve)", { timeout: 240_000 }, () => {
  let dataDir: string;
  let server: RunningServer;
  const opts = (apiKey: string) => ({
    apiUrl: server.url,
    sandboxUrl: server.url,
    apiKey,
    requestTimeoutMs: 60_000,
  });

  before(async () => {
    dataDir = mkdtempSync(join(tmpdir(), "kiln-hostile-tokens-"));
    server = await startServer({
      dataDir,
      port: 0,
      graceMs: 1000,
      maxLifetimeMs: 2 * HOUR_MS,
      e2bTier: "virtual",
    });
  });
  after(async () => {
    await server?.close(500);
    rmSync(dataDir, { recursive: true, force: true });
  });

  test("tokens-revoked-key: after `kiln keys revoke`, the key's envd tokens stop working", async () => {
    const { key, info } = server.keys.create({ name: "to-revoke" });
    const sb = await Sandbox.create({ ...opts(key), timeoutMs: 120_000 });
    const token = (sb as unknown as { envdAccessToken: string }).envdAccessToken;
    assert.ok(token, "the sandbox has an access token");
    await sb.files.write("/workspace/hello.txt", "hi");
    assert.equal((await sb.commands.run("echo ok")).stdout, "ok\n");
    assert.equal((await envd(server.url, sb.sandboxId, token, "files")).status, 200);

    assert.equal(await cli(dataDir, ["keys", "revoke", info.id]), 0);

    // The very next request of every kind is refused.
    for (const what of ["files", "health", "rpc"] as const) {
      const r = await envd(server.url, sb.sandboxId, token, what);
      assert.ok(r.status >= 400, `${what} after revocation: HTTP ${r.status} ${r.body}`);
    }
    await assert.rejects(sb.files.write("/workspace/after.txt", "nope"));
    await assert.rejects(sb.commands.run("echo still here"));
    // Nothing was written: the sandbox (seen by the server, not through the key) has no after.txt.
    const live = await server.kiln.connect(sb.sandboxId);
    assert.equal(await live.files.exists("/workspace/after.txt"), false);
    await server.kiln.kill(sb.sandboxId);
  });

  test("tokens-deleted-sandbox: killing a sandbox ends its tokens", async () => {
    const { key } = server.keys.create({ name: "deleter" });
    const sb = await Sandbox.create({ ...opts(key), timeoutMs: 120_000 });
    const token = (sb as unknown as { envdAccessToken: string }).envdAccessToken;
    await sb.files.write("/workspace/hello.txt", "hi");
    assert.equal((await envd(server.url, sb.sandboxId, token, "files")).status, 200);
    await sb.kill();
    for (const what of ["files", "rpc"] as const) {
      const r = await envd(server.url, sb.sandboxId, token, what);
      assert.ok(r.status >= 400, `${what} after kill: HTTP ${r.status}`);
    }
  });

  test("tokens-lifetime-max: timeout 0 is the server's maximum lifetime, never year 9999", async () => {
    const { key } = server.keys.create({ name: "forever" });
    const before = Date.now();
    const sb = await Sandbox.create({ ...opts(key), timeoutMs: 0 });
    const info = await sb.getInfo();
    const end = info.endAt.getTime();
    assert.ok(end > before, `endAt ${info.endAt.toISOString()} is in the future`);
    assert.ok(end <= Date.now() + 2 * HOUR_MS, `endAt ${info.endAt.toISOString()} is within the maximum`);
    // Asking for longer than the maximum is refused, at create and later.
    await assert.rejects(Sandbox.create({ ...opts(key), timeoutMs: 3 * HOUR_MS }), (e: Error) => {
      assert.equal((e as { statusCode?: number }).statusCode, 400, String(e));
      return true;
    });
    await assert.rejects(sb.setTimeout(3 * HOUR_MS));
    const still = await sb.getInfo();
    assert.ok(still.endAt.getTime() <= Date.now() + 2 * HOUR_MS);
    await sb.kill();
  });

  test("tokens-no-oracle: envd answers another owner's sandbox exactly as a missing one", async () => {
    const alice = server.keys.create({ name: "alice" }).key;
    const bob = server.keys.create({ name: "bob" }).key;
    const victim = await Sandbox.create({ ...opts(alice), timeoutMs: 120_000 });
    await victim.files.write("/workspace/hello.txt", "secret");
    const mine = await Sandbox.create({ ...opts(bob), timeoutMs: 120_000 });
    const bobToken = (mine as unknown as { envdAccessToken: string }).envdAccessToken;
    const gone = await Sandbox.create({ ...opts(bob), timeoutMs: 120_000 });
    await gone.kill();
    const never = "sb_00000000000000000000";
    for (const what of ["files", "health", "rpc"] as const) {
      for (const token of [bobToken, undefined, "garbage"]) {
        const foreign = shape(await envd(server.url, victim.sandboxId, token, what), victim.sandboxId);
        const killed = shape(await envd(server.url, gone.sandboxId, token, what), gone.sandboxId);
        const missing = shape(await envd(server.url, never, token, what), never);
        assert.ok(foreign.status >= 400, `${what}: ${foreign.status}`);
        assert.deepEqual(foreign, missing, `${what} with token ${token}: foreign vs never existed`);
        assert.deepEqual(killed, missing, `${what} with token ${token}: killed vs never existed`);
      }
    }
    await victim.kill();
    await mine.kill();
  });
});

/** `curl` with no header of ours: the status and body (a POST sends `data` as the `file` form part). */
function curl(url: string, data?: string): Promise<{ status: number; body: string }> {
  const args = ["-s", "-o", "-", "-w", "\n%{http_code}", url];
  if (data !== undefined) args.unshift("-F", `file=@-;filename=up.txt`);
  return new Promise((resolve, reject) => {
    const child = spawn("curl", args, { stdio: ["pipe", "pipe", "inherit"] });
    let out = "";
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", (d) => {
      out += d;
    });
    child.once("error", reject);
    child.once("exit", () => {
      const cut = out.lastIndexOf("\n");
      resolve({ status: Number(out.slice(cut + 1)), body: out.slice(0, cut) });
    });
    child.stdin.end(data ?? "");
  });
}

/** A request to a signed URL through the host an E2B wildcard domain gives (`49983-<id>.<domain>`). */
function viaSandboxHost(
  server: string,
  signedUrl: string,
  sandboxId: string,
  init: { method?: string; body?: string } = {},
): Promise<{ status: number; body: string }> {
  const target = new URL(signedUrl);
  const base = new URL(server);
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: base.hostname,
        port: base.port,
        path: target.pathname + target.search,
        method: init.method ?? "GET",
        headers: { host: `49983-${sandboxId}.kiln.test` },
      },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (d) => {
          body += d;
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.once("error", reject);
    if (init.body !== undefined) {
      const boundary = "kilnboundary";
      req.setHeader("content-type", `multipart/form-data; boundary=${boundary}`);
      req.end(
        `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="up.txt"\r\n` +
          `Content-Type: application/octet-stream\r\n\r\n${init.body}\r\n--${boundary}--\r\n`,
      );
    } else req.end();
  });
}

describe("E2B signed URLs (kiln serve)", { timeout: 240_000 }, () => {
  let dataDir: string;
  let server: RunningServer;
  before(async () => {
    dataDir = mkdtempSync(join(tmpdir(), "kiln-hostile-signed-"));
    server = await startServer({ dataDir, port: 0, graceMs: 1000, e2bTier: "virtual" });
  });
  after(async () => {
    await server?.close(500);
    rmSync(dataDir, { recursive: true, force: true });
  });

  test("tokens-signed-url: the SDK's signed URLs work, are bound to path, operation and sandbox, and end with the key", async () => {
    const { key, info } = server.keys.create({ name: "signer" });
    const o = { apiUrl: server.url, sandboxUrl: server.url, apiKey: key, requestTimeoutMs: 60_000 };
    const sb = await Sandbox.create({ ...o, timeoutMs: 120_000 });
    const other = await Sandbox.create({ ...o, timeoutMs: 120_000 });
    await sb.files.write("/workspace/a.txt", "alpha");
    await sb.files.write("/workspace/b.txt", "beta");

    const read = await sb.downloadUrl("/workspace/a.txt");
    const r = await viaSandboxHost(server.url, read, sb.sandboxId);
    assert.deepEqual(r, { status: 200, body: "alpha" });
    const expiring = await sb.downloadUrl("/workspace/a.txt", { useSignatureExpiration: 600 });
    assert.equal((await viaSandboxHost(server.url, expiring, sb.sandboxId)).status, 200);

    // Another path with the same signature, another sandbox, another operation: refused, alike.
    const refused = await viaSandboxHost(server.url, read, other.sandboxId);
    assert.ok(refused.status >= 400);
    const swapped = new URL(read);
    swapped.searchParams.set("path", "/workspace/b.txt");
    assert.deepEqual(await viaSandboxHost(server.url, swapped.toString(), sb.sandboxId), {
      ...refused,
      body: refused.body.replaceAll(other.sandboxId, sb.sandboxId),
    });
    const asWrite = await viaSandboxHost(server.url, read, sb.sandboxId, { method: "POST", body: "x" });
    assert.ok(asWrite.status >= 400, `a read URL must not write: HTTP ${asWrite.status}`);
    const expired = new URL(expiring);
    expired.searchParams.set("signature_expiration", String(Math.floor(Date.now() / 1000) - 10));
    assert.ok((await viaSandboxHost(server.url, expired.toString(), sb.sandboxId)).status >= 400);

    // An upload URL writes; after the key is revoked, neither URL works.
    const write = await sb.uploadUrl("/workspace/up.txt");
    const w = await viaSandboxHost(server.url, write, sb.sandboxId, { method: "POST", body: "uploaded" });
    assert.equal(w.status, 200, w.body);
    assert.equal(await sb.files.read("/workspace/up.txt"), "uploaded");
    server.keys.revoke(info.id);
    assert.ok((await viaSandboxHost(server.url, read, sb.sandboxId)).status >= 400);
    const late = await viaSandboxHost(server.url, write, sb.sandboxId, { method: "POST", body: "late" });
    assert.ok(late.status >= 400);
    const live = await server.kiln.connect(sb.sandboxId);
    assert.equal(await live.files.read("/workspace/up.txt"), "uploaded");
    await server.kiln.kill(sb.sandboxId);
    await server.kiln.kill(other.sandboxId);
  });

  test("tokens-signed-url-curl: a signed URL works from plain curl (no header), until it expires or its sandbox goes", async () => {
    const { key } = server.keys.create({ name: "curl" });
    const o = { apiUrl: server.url, sandboxUrl: server.url, apiKey: key, requestTimeoutMs: 60_000 };
    const sb = await Sandbox.create({ ...o, timeoutMs: 120_000 });
    const other = await Sandbox.create({ ...o, timeoutMs: 120_000 });
    await sb.files.write("/workspace/a.txt", "alpha");
    await other.files.write("/workspace/a.txt", "other");
    const long = await sb.downloadUrl("/workspace/a.txt", { useSignatureExpiration: 600 });
    const short = await sb.downloadUrl("/workspace/a.txt", { useSignatureExpiration: 1 });
    const upload = await sb.uploadUrl("/workspace/curl.txt", { useSignatureExpiration: 600 });
    // The URL names no sandbox (the SDK points at one sandboxUrl): the signature finds it.
    assert.ok(!long.includes(sb.sandboxId));
    assert.deepEqual(await curl(long), { status: 200, body: "alpha" });
    const up = await curl(upload, "uploaded by curl");
    assert.equal(up.status, 200, up.body);
    assert.equal((JSON.parse(up.body) as { path: string }[])[0]?.path, "/workspace/curl.txt");
    assert.equal(await sb.files.read("/workspace/curl.txt"), "uploaded by curl");
    assert.equal((await curl(upload.replace("signature=", "signature=x"), "forged")).status, 404);
    // Past its expiry (by the URL's own clock), the same signature is refused.
    const expiry = Number(new URL(short).searchParams.get("signature_expiration"));
    while (Date.now() < (expiry + 1) * 1000) await new Promise((r) => setTimeout(r, 200));
    assert.equal((await curl(short)).status, 404);
    // When the sandbox goes, its URLs stop; the other sandbox's file was never reachable through them.
    await sb.kill();
    assert.equal((await curl(long)).status, 404);
    assert.equal(await other.files.read("/workspace/a.txt"), "other");
    await other.kill();
  });
});
