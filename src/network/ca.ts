/**
 * A sandbox's own certificate authority, for TLS interception: made once per
 * sandbox (its key never leaves the host: it is kept in the sandbox's state
 * directory, outside the sandbox), trusted only by that sandbox, and used to
 * issue a certificate for each host whose requests Kiln must see (hosts a
 * secret is sent to). Keys are RSA 2048 made by Node's crypto; certificates
 * are built and signed by node-forge.
 */
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import tls from "node:tls";
import forge from "node-forge";
import { parseAddress } from "./address.ts";

/** What the sandbox trusts: the CA certificate. */
export interface CaFiles {
  /** PEM of the CA certificate. */
  certPem: string;
}

const TEN_YEARS_MS = 10 * 365 * 24 * 3600 * 1000;

function rsaKeyPair(): {
  privateKey: forge.pki.rsa.PrivateKey;
  publicKey: forge.pki.rsa.PublicKey;
  pem: string;
} {
  const k = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const pem = k.privateKey.export({ type: "pkcs1", format: "pem" }).toString();
  return {
    privateKey: forge.pki.privateKeyFromPem(pem),
    publicKey: forge.pki.publicKeyFromPem(k.publicKey.export({ type: "spki", format: "pem" }).toString()),
    pem,
  };
}

/** A positive serial number (forge takes hex; the first bit must be 0). */
function serial(): string {
  return `01${randomBytes(15).toString("hex")}`;
}

/** One sandbox's CA and the server certificates it issued, by host. */
export class SandboxCa {
  /** PEM of the CA certificate (what the sandbox trusts). */
  readonly certPem: string;
  private readonly cert: forge.pki.Certificate;
  private readonly key: forge.pki.rsa.PrivateKey;
  /** One key for every leaf of this CA. */
  private leafKey: ReturnType<typeof rsaKeyPair> | undefined;
  private readonly contexts = new Map<string, tls.SecureContext>();

  private constructor(certPem: string, keyPem: string) {
    this.certPem = certPem;
    this.cert = forge.pki.certificateFromPem(certPem);
    this.key = forge.pki.privateKeyFromPem(keyPem);
  }

  /** The CA kept in `dir` (`ca.pem`, `ca.key`), made there on first use. */
  static open(dir: string): SandboxCa {
    const certFile = join(dir, "ca.pem");
    const keyFile = join(dir, "ca.key");
    if (existsSync(certFile) && existsSync(keyFile))
      return new SandboxCa(readFileSync(certFile, "utf8"), readFileSync(keyFile, "utf8"));
    const ca = SandboxCa.create();
    mkdirSync(dir, { recursive: true });
    writeFileSync(keyFile, ca.keyPem, { mode: 0o600 });
    writeFileSync(certFile, ca.certPem);
    return new SandboxCa(ca.certPem, ca.keyPem);
  }

  /** A new CA, in memory. */
  static create(): { certPem: string; keyPem: string } {
    const k = rsaKeyPair();
    const cert = forge.pki.createCertificate();
    cert.publicKey = k.publicKey;
    cert.serialNumber = serial();
    cert.validity.notBefore = new Date(Date.now() - 3600_000);
    cert.validity.notAfter = new Date(Date.now() + TEN_YEARS_MS);
    const name = [
      { name: "commonName", value: "Kiln sandbox CA" },
      { name: "organizationName", value: "Kiln" },
    ];
    cert.setSubject(name);
    cert.setIssuer(name);
    cert.setExtensions([
      { name: "basicConstraints", cA: true, critical: true },
      { name: "keyUsage", keyCertSign: true, cRLSign: true, critical: true },
      { name: "subjectKeyIdentifier" },
    ]);
    cert.sign(k.privateKey, forge.md.sha256.create());
    return { certPem: forge.pki.certificateToPem(cert), keyPem: k.pem };
  }

  /** A TLS context serving a certificate for `host` (a name or an address), issued on first use. */
  contextFor(host: string): tls.SecureContext {
    let ctx = this.contexts.get(host);
    if (ctx) return ctx;
    this.leafKey ??= rsaKeyPair();
    const cert = forge.pki.createCertificate();
    cert.publicKey = this.leafKey.publicKey;
    cert.serialNumber = serial();
    cert.validity.notBefore = new Date(Date.now() - 3600_000);
    cert.validity.notAfter = new Date(Date.now() + 397 * 24 * 3600 * 1000);
    cert.setSubject([{ name: "commonName", value: host }]);
    cert.setIssuer(this.cert.subject.attributes);
    const ip = parseAddress(host);
    cert.setExtensions([
      { name: "basicConstraints", cA: false },
      { name: "keyUsage", digitalSignature: true, keyEncipherment: true, critical: true },
      { name: "extKeyUsage", serverAuth: true },
      { name: "subjectAltName", altNames: [ip ? { type: 7, ip: ip.toString() } : { type: 2, value: host }] },
      { name: "authorityKeyIdentifier", keyIdentifier: this.cert.generateSubjectKeyIdentifier().getBytes() },
    ]);
    cert.sign(this.key, forge.md.sha256.create());
    ctx = tls.createSecureContext({
      key: this.leafKey.pem,
      cert: `${forge.pki.certificateToPem(cert)}${this.certPem}`,
    });
    if (this.contexts.size >= 1000) this.contexts.clear();
    this.contexts.set(host, ctx);
    return ctx;
  }
}
