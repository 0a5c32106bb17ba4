/**
 * The one token service: every sandbox-scoped credential Kiln hands out (the
 * E2B envd access token, E2B signed file URLs, and any later per-port or
 * per-feature token) is built and checked here, and nowhere else.
 *
 * A token is derived from the API key that owns the sandbox and is bound to
 *  - the sandbox: its id and its creation time (a later sandbox can never
 *    inherit it, even under the same id),
 *  - a purpose (`e2b-envd`, `port:<n>`, ...): a token for one use is
 *    useless for another,
 *  - an expiry: an instant in ms, or `sandbox` (it lives as long as the
 *    sandbox does, which the server's maximum lifetime bounds).
 *
 * Layout: `kt1.<purpose>.<expiry>.<mac>`, where `<expiry>` is base-36 ms or
 * `s` (with the sandbox) and `<mac>` is HMAC-SHA256 (base64url) under the
 * server's secret of the purpose, the sandbox id and creation time, the owner
 * (the key's id) and the expiry. The same inputs give the same token, which
 * E2B's signed URLs need (the SDK signs with the token it holds).
 *
 * {@link SandboxTokens.check} runs on every request: it reads the sandbox's
 * record and asks whether its owner's key is still valid, so revoking the
 * key or deleting the sandbox ends every token at the next request. Every
 * failure (no such sandbox, another owner's, a bad, expired or revoked token)
 * is the same `not_found`, so a token holder learns nothing about sandboxes
 * its token is not for.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { chmodSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type Kiln, NotFoundError, type SandboxInfo, type VolumeInfo } from "../index.ts";

/** The metadata label holding the owning key's id (`kiln.owner`). */
const OWNER_LABEL = "kiln.owner";

/** What a token is for. `e2b-envd`: E2B's envd access token (and the signed URLs made from it). */
export type TokenPurpose = "e2b-envd" | `port:${number}`;

/** The parts of an E2B signed URL (`signature`, `signature_expiration`, `path`, `username`, and the method). */
export interface E2bSignature {
  path: string;
  operation: "read" | "write";
  user: string;
  signature: string;
  /** Unix seconds, as sent. */
  expiration?: string;
}

/** Options of {@link SandboxTokens}. */
export interface SandboxTokensOptions {
  /** The server's secret (at least 16 bytes). */
  secret: Uint8Array;
  /** The record of a live sandbox, or undefined when there is none. */
  record: (sandboxId: string) => SandboxInfo | undefined;
  /**
   * Whether the key with this id (a sandbox's owner) is still valid; asked on
   * every check, so that a revocation made by another process counts at once.
   */
  ownerActive: (owner: string) => boolean;
  /** The clock, in ms since the epoch; default `Date.now`. */
  now?: () => number;
  /** The record of a volume, or undefined when there is none (volume tokens: E2B's volume content API). */
  volume?: (volumeId: string) => VolumeInfo | undefined;
}

/** Issues and checks sandbox-scoped tokens. */
export class SandboxTokens {
  private readonly secret: Uint8Array;
  private readonly options: SandboxTokensOptions;

  constructor(options: SandboxTokensOptions) {
    if (options.secret.length < 16) throw new RangeError("the token secret must be at least 16 bytes");
    this.secret = options.secret;
    this.options = options;
  }

  /**
   * The token for `purpose` on the sandbox `info`, derived from its owner's
   * key; `expiresAtMs` undefined: it ends with the sandbox.
   */
  issue(info: SandboxInfo, purpose: TokenPurpose, expiresAtMs?: number): string {
    const expiry = expiresAtMs === undefined ? "s" : Math.floor(expiresAtMs).toString(36);
    return `kt1.${purpose}.${expiry}.${this.mac(info, purpose, expiry)}`;
  }

  /**
   * The record of the sandbox `sandboxId` when `token` is a valid `purpose`
   * token for it: issued for this sandbox (this incarnation of its id), not
   * expired, and its owner's key not revoked.
   * @throws NotFoundError (`not_found`) for every failure alike
   */
  check(token: string | null | undefined, sandboxId: string, purpose: TokenPurpose): SandboxInfo {
    const info = this.live(sandboxId);
    const parts = typeof token === "string" ? token.split(".") : [];
    if (parts.length !== 4 || parts[0] !== "kt1" || parts[1] !== purpose) throw gone(sandboxId);
    const expiry = parts[2]!;
    if (!equal(parts[3]!, this.mac(info, purpose, expiry))) throw gone(sandboxId);
    if (expiry !== "s") {
      const at = Number.parseInt(expiry, 36);
      if (!Number.isSafeInteger(at) || at <= this.now()) throw gone(sandboxId);
    }
    return info;
  }

  /**
   * Checks an E2B signed URL (`files.downloadUrl` / `uploadUrl` of the SDK):
   * `signature` must be `v1_` + base64 SHA-256 (unpadded) of
   * `path:operation:user:token[:expiration]`, where `token` is the sandbox's
   * envd access token; `expiration` (Unix seconds) must not have passed.
   * @throws NotFoundError (`not_found`) for every failure alike
   */
  checkE2bSignature(sandboxId: string, s: E2bSignature): SandboxInfo {
    const info = this.live(sandboxId);
    const token = this.issue(info, "e2b-envd");
    let raw = `${s.path}:${s.operation}:${s.user}:${token}`;
    if (s.expiration !== undefined) {
      const at = Number(s.expiration);
      if (!/^[0-9]{1,12}$/.test(s.expiration) || at * 1000 <= this.now()) throw gone(sandboxId);
      raw += `:${s.expiration}`;
    }
    const want = `v1_${createHash("sha256").update(raw).digest("base64").replace(/=+$/, "")}`;
    if (!equal(s.signature, want)) throw gone(sandboxId);
    return info;
  }

  /**
   * The sandbox an E2B signed URL is for, when the URL does not name it (an
   * SDK pointed at one `sandboxUrl` leaves the sandbox out of the URL, so that
   * `curl URL` carries nothing else): the first of `candidates` (sandbox ids)
   * whose check passes. One HMAC and one SHA-256 per candidate.
   * @throws NotFoundError (`not_found`) when none does
   */
  findE2bSignature(candidates: Iterable<string>, s: E2bSignature): SandboxInfo {
    for (const id of candidates) {
      try {
        return this.checkE2bSignature(id, s);
      } catch {
        // not this one
      }
    }
    throw new NotFoundError("no sandbox for this signed URL");
  }

  /**
   * The token of E2B's volume content API for the volume `v`, derived from its owner's key and
   * bound to the volume's id and creation time (a volume made later under the same name gets
   * another); it lasts as long as the volume and the key.
   */
  issueVolume(v: VolumeInfo): string {
    return `kt1.e2b-volume.s.${this.volumeMac(v)}`;
  }

  /**
   * The volume `volumeId` when `token` is its volume token and its owner's key is valid.
   * @throws NotFoundError (`not_found`) for every failure alike
   */
  checkVolume(token: string | null | undefined, volumeId: string): VolumeInfo {
    let v: VolumeInfo | undefined;
    try {
      v = this.options.volume?.(volumeId);
    } catch {
      v = undefined;
    }
    const none = new NotFoundError(`no volume ${volumeId}`);
    if (!v) throw none;
    const owner = v.metadata[OWNER_LABEL] ?? "";
    if (owner !== "" && !this.options.ownerActive(owner)) throw none;
    const parts = typeof token === "string" ? token.split(".") : [];
    if (parts.length !== 4 || parts[0] !== "kt1" || parts[1] !== "e2b-volume" || parts[2] !== "s") throw none;
    if (!equal(parts[3]!, this.volumeMac(v))) throw none;
    return v;
  }

  private volumeMac(v: VolumeInfo): string {
    const owner = v.metadata[OWNER_LABEL] ?? "";
    return createHmac("sha256", this.secret)
      .update(["kiln-token-v1", "e2b-volume", v.id, v.createdAt, owner, "s"].join("\0"))
      .digest("base64url");
  }

  /** The record of a live sandbox whose owner's key is valid. @throws NotFoundError */
  private live(sandboxId: string): SandboxInfo {
    const info = this.options.record(sandboxId);
    if (!info || info.state === "killed") throw gone(sandboxId);
    const owner = info.metadata[OWNER_LABEL] ?? "";
    if (owner !== "" && !this.options.ownerActive(owner)) throw gone(sandboxId);
    return info;
  }

  private mac(info: SandboxInfo, purpose: string, expiry: string): string {
    const owner = info.metadata[OWNER_LABEL] ?? "";
    return createHmac("sha256", this.secret)
      .update(["kiln-token-v1", purpose, info.id, info.createdAt, owner, expiry].join("\0"))
      .digest("base64url");
  }

  private now(): number {
    return (this.options.now ?? Date.now)();
  }
}

function gone(sandboxId: string): NotFoundError {
  return new NotFoundError(`no sandbox ${sandboxId}`);
}

function equal(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/**
 * The server's token secret, kept in `<dataDir>/tokens.key` (created with mode
 * 0600 on first use), so that tokens stay valid across restarts.
 */
export function loadTokenSecret(dataDir: string): Uint8Array {
  const path = join(dataDir, "tokens.key");
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

/** A sandbox's record, or undefined when it does not exist (or the id is malformed). */
export function recordOrUndefined(kiln: Kiln, id: string): SandboxInfo | undefined {
  try {
    return kiln.record(id);
  } catch {
    return undefined;
  }
}
