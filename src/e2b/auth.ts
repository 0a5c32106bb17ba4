/**
 * Credentials of the E2B surface.
 *
 * - REST calls carry the API key in `X-API-KEY` (the SDK's `apiKey` /
 *   `E2B_API_KEY`); `Authorization: Bearer <key>` is accepted too. The
 *   mounting server's `authenticate` turns it into an owner.
 * - envd calls (commands, files) carry `E2b-Sandbox-Id` and `X-Access-Token`:
 *   the `envdAccessToken` that create/connect returned. Kiln's token is an
 *   HMAC of the sandbox id and its owner under a server secret, so it is
 *   checked without any lookup and is useless for any other sandbox.
 */
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { chmodSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/** The envd port the SDK puts in hostnames and in `E2b-Sandbox-Port`. */
export const ENVD_PORT = 49983;

/** Issues and checks per-sandbox envd access tokens. */
export class AccessTokens {
  private readonly secret: Uint8Array;

  constructor(secret: Uint8Array) {
    if (secret.length < 16) throw new Error("the access token secret must be at least 16 bytes");
    this.secret = secret;
  }

  /** The token for a sandbox and its owner (empty string: unowned). */
  issue(sandboxId: string, owner: string): string {
    return createHmac("sha256", this.secret).update(`e2b-envd\0${sandboxId}\0${owner}`).digest("base64url");
  }

  /** Whether `token` is the one issued for this sandbox and owner. */
  verify(token: string | null | undefined, sandboxId: string, owner: string): boolean {
    if (!token) return false;
    const want = Buffer.from(this.issue(sandboxId, owner));
    const got = Buffer.from(token);
    return got.length === want.length && timingSafeEqual(got, want);
  }
}

/**
 * The secret kept in `<dataDir>/e2b-token.key` (created, mode 0600, on first
 * use), so that tokens stay valid across restarts of the server.
 */
export function loadTokenSecret(dataDir: string): Uint8Array {
  const path = join(dataDir, "e2b-token.key");
  try {
    const s = readFileSync(path);
    if (s.length >= 32) return new Uint8Array(s);
  } catch {
    // created below
  }
  const s = randomBytes(32);
  try {
    writeFileSync(path, s, { mode: 0o600, flag: "wx" });
  } catch {
    // another process created it first: use that one
    const again = readFileSync(path);
    if (again.length >= 32) return new Uint8Array(again);
    writeFileSync(path, s, { mode: 0o600 });
  }
  chmodSync(path, 0o600);
  return new Uint8Array(s);
}

/** The API key of a REST request, or undefined. */
export function apiKeyOf(req: Request): string | undefined {
  const key = req.headers.get("x-api-key");
  if (key) return key;
  const auth = req.headers.get("authorization");
  const m = auth ? /^Bearer\s+(.+)$/i.exec(auth) : null;
  return m?.[1];
}

/**
 * The sandbox an envd request is for, or undefined for a REST request:
 * the `E2b-Sandbox-Id` header (the SDK sends it on every envd call), else a
 * host of the form `49983-<sandboxId>.<domain>` (the SDK's host when pointed
 * at a wildcard domain with `E2B_DOMAIN`).
 */
export function envdSandboxIdOf(req: Request): string | undefined {
  const id = req.headers.get("e2b-sandbox-id");
  if (id) return id;
  const host = req.headers.get("host") ?? new URL(req.url).host;
  const m = new RegExp(`^${ENVD_PORT}-([A-Za-z0-9_]+)\\.`).exec(host);
  return m?.[1];
}
