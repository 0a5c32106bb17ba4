/**
 * E2B's self-hosting set-up against `kiln serve`: a wildcard DNS name in front
 * of the server with TLS (what Caddy or any TLS proxy does in a deployment;
 * here a TLS front on a loopback port with a certificate for
 * `*.kiln.localhost` from a throw-away CA), and the unmodified `e2b` SDK in a
 * process of its own configured with only `E2B_API_URL`, `E2B_DOMAIN` and
 * `E2B_API_KEY`. The SDK then addresses envd as
 * `https://49983-{id}.kiln.localhost:{port}` and the server's Host router
 * answers it. Names under `.localhost` resolve to loopback in the client
 * (test/e2b/wildcard/localhost-resolver.mjs, RFC 6761); nothing on the
 * machine changes.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { connect as netConnect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { createServer as createTlsServer, type Server as TlsServer } from "node:tls";
import { fileURLToPath } from "node:url";
import { type RunningServer, startServer } from "../../src/server/index.ts";
import { makeTestCertificates } from "../network/test-ca.ts";

const HERE = fileURLToPath(new URL("./wildcard/", import.meta.url));
const DOMAIN_BASE = "kiln.localhost";

let dir = "";
let server: RunningServer | undefined;
let front: TlsServer | undefined;
const frontSockets = new Set<Socket>();
let frontPort = 0;
let caFile = "";
let key = "";

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "kiln-e2b-domain-"));
  const certs = makeTestCertificates([`*.${DOMAIN_BASE}`, DOMAIN_BASE]);
  caFile = join(dir, "ca.pem");
  writeFileSync(caFile, certs.ca);
  // The TLS front: terminates TLS and passes the bytes to the server, Host header and all.
  front = createTlsServer({ key: certs.key, cert: certs.cert }, (client) => {
    const upstream = netConnect(Number(new URL(server!.url).port), "127.0.0.1");
    frontSockets.add(client).add(upstream);
    const end = () => {
      client.destroy();
      upstream.destroy();
      frontSockets.delete(client);
      frontSockets.delete(upstream);
    };
    client.on("error", end).on("close", end);
    upstream.on("error", end).on("close", end);
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve, reject) => {
    front!.once("error", reject).listen(0, "127.0.0.1", () => resolve());
  });
  frontPort = (front.address() as { port: number }).port;
  // The server knows the public domain (with the front's port, as the SDK's URLs carry it).
  server = await startServer({
    dataDir: join(dir, "data"),
    port: 0,
    graceMs: 1000,
    e2bTier: "virtual",
    domain: `${DOMAIN_BASE}:${frontPort}`,
  });
  key = server.keys.create({ name: "wildcard" }).key;
});

after(async () => {
  for (const s of frontSockets) s.destroy();
  await new Promise<void>((resolve) => (front ? front.close(() => resolve()) : resolve()));
  await server?.close(1000);
  rmSync(dir, { recursive: true, force: true });
});

interface ClientReport {
  sandboxId: string;
  stdout: string;
  read: string;
  listed: string[];
  names: string[];
}

/** Runs the client with exactly E2B's environment (no E2B_SANDBOX_URL); a safety-net timeout kills it. */
function runClient(env: Record<string, string>): Promise<{ report?: ClientReport; error?: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ["--import", join(HERE, "localhost-resolver.mjs"), join(HERE, "client.ts")],
      {
        env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: dir, ...env },
        cwd: fileURLToPath(new URL("../../", import.meta.url)),
        timeout: 180_000,
        killSignal: "SIGKILL",
        maxBuffer: 4 * 1024 * 1024,
      },
      (err, stdout, stderr) => {
        const line = stdout.trim().split("\n").at(-1) ?? "";
        if (err || !line.startsWith("{")) {
          resolve({ error: `${err?.message ?? "no report"}\n${stderr}\n${stdout}` });
          return;
        }
        resolve({ report: JSON.parse(line) as ClientReport });
      },
    );
  });
}

test("the e2b SDK with only E2B_API_URL and E2B_DOMAIN reaches sandboxes as 49983-{id}.{domain} over TLS", async () => {
  const domain = `${DOMAIN_BASE}:${frontPort}`;
  const { report, error } = await runClient({
    // The API through the same front and wildcard name, as in a deployment.
    E2B_API_URL: `https://api.${domain}`,
    E2B_DOMAIN: domain,
    E2B_API_KEY: key,
    NODE_EXTRA_CA_CERTS: caFile,
  });
  assert.ok(report, `the client failed: ${error}`);
  assert.equal(report.stdout, "via-the-domain\n");
  assert.equal(report.read, "written through the wildcard name");
  assert.ok(report.listed.includes("domain.txt"));
  // envd was addressed by the sandbox's own name, which the client resolved and checked against the certificate.
  assert.ok(
    report.names.includes(`49983-${report.sandboxId.toLowerCase()}.${DOMAIN_BASE}`),
    `names resolved: ${report.names.join(", ")}`,
  );
  assert.ok(report.names.includes(`api.${DOMAIN_BASE}`));
  // The sandbox the client killed is gone from the server.
  await assert.rejects(server!.kiln.connect(report.sandboxId), { code: "not_found" });
});

test("a host name under the domain that names no sandbox reaches none", async () => {
  // The Host router answers envd names itself: an unknown sandbox is refused, not sent to the API.
  const u = new URL(server!.url);
  const status = await new Promise<number>((resolve, reject) => {
    const req = httpRequest(
      {
        host: u.hostname,
        port: u.port,
        path: "/health",
        headers: { host: `49983-nosuchsandbox.${DOMAIN_BASE}:${frontPort}`, "x-access-token": "forged" },
        timeout: 60_000,
      },
      (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      },
    );
    req.on("timeout", () => req.destroy(new Error("no answer")));
    req.on("error", reject);
    req.end();
  });
  assert.equal(status, 502);
});
