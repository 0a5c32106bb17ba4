/**
 * Secrets a sandbox uses without holding them: the sandbox sees only a
 * placeholder; the egress path puts the real value in place of the
 * placeholder in the headers of requests to the secret's own hosts, which it
 * can see because it terminates TLS for exactly those hosts (with the
 * sandbox's own CA, see ca.ts). A placeholder in a request to any other host,
 * or over plain HTTP, is refused; the real value is taken back out of the
 * response's headers and body, so a host that echoes requests cannot hand it
 * to the sandbox.
 */
import { randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Transform, type TransformCallback } from "node:stream";
import { InvalidArgumentError } from "../core/errors.ts";
import { parseRule, type Rule, ruleMatches } from "./rules.ts";

/** A secret as the egress path uses it. */
export interface Secret {
  /** Its name (the environment variable that holds the placeholder in the sandbox). */
  name: string;
  /** The real value; never inside the sandbox. */
  value: string;
  /** What the sandbox holds instead. */
  placeholder: string;
  /** Host rules (names, `*.` wildcards, optional `:port`) it may be sent to. */
  hosts: Rule[];
  /** Header names (lower case) it may be put in; undefined: any header that carries the placeholder. */
  headers?: string[];
}

/** A new placeholder for secret `name`: recognisable, random, and unrelated to the value. */
export function newPlaceholder(name: string): string {
  return `KILN_SECRET_${name}_${randomBytes(16).toString("hex")}`;
}

/**
 * A checked secret.
 * @throws InvalidArgumentError (bad name, empty value, no hosts, a host rule that is not a name)
 */
export function makeSecret(
  name: string,
  spec: { value: string; hosts: string[]; headers?: string[] },
  placeholder = newPlaceholder(name),
): Secret {
  if (!/^[A-Za-z_][A-Za-z0-9_]{0,63}$/.test(name))
    throw new InvalidArgumentError(
      `secret name ${JSON.stringify(name)} must be an environment variable name`,
    );
  if (typeof spec.value !== "string" || spec.value.length === 0 || spec.value.length > 8192)
    throw new InvalidArgumentError(`secret ${name}: value must be 1 to 8192 characters`);
  if (/[\r\n\0]/.test(spec.value))
    throw new InvalidArgumentError(`secret ${name}: value cannot hold line breaks`);
  if (!Array.isArray(spec.hosts) || spec.hosts.length === 0)
    throw new InvalidArgumentError(`secret ${name}: hosts must name at least one host`);
  const hosts = spec.hosts.map(parseRule);
  if (hosts.some((r) => r.kind === "cidr"))
    throw new InvalidArgumentError(
      `secret ${name}: hosts are names (TLS needs a name to check the server by)`,
    );
  return {
    name,
    value: spec.value,
    placeholder,
    hosts,
    ...(spec.headers ? { headers: spec.headers.map((h) => h.toLowerCase()) } : {}),
  };
}

/** Whether `secret` may go to host `name` on `port`. */
export function secretAllows(secret: Secret, name: string, port: number): boolean {
  return secret.hosts.some((r) => ruleMatches(r, { name, port }));
}

/** The first secret whose placeholder appears in the raw header list or the URL, if any. */
export function placeholderIn(
  secrets: readonly Secret[],
  rawHeaders: string[],
  url: string,
): Secret | undefined {
  return secrets.find(
    (s) => url.includes(s.placeholder) || rawHeaders.some((h) => h.includes(s.placeholder)),
  );
}

/**
 * The raw headers with each placeholder replaced by its value, for a request
 * to `name`:`port`; or the secret that may not go there (or not in that header).
 */
export function injectSecrets(
  secrets: readonly Secret[],
  rawHeaders: string[],
  name: string,
  port: number,
): { headers: string[]; injected: Secret[] } | { refused: Secret } {
  const out = [...rawHeaders];
  const injected = new Set<Secret>();
  for (let i = 0; i + 1 < out.length; i += 2) {
    for (const s of secrets) {
      if (!out[i]!.includes(s.placeholder) && !out[i + 1]!.includes(s.placeholder)) continue;
      if (out[i]!.includes(s.placeholder)) return { refused: s };
      if (!secretAllows(s, name, port) || (s.headers && !s.headers.includes(out[i]!.toLowerCase())))
        return { refused: s };
      out[i + 1] = out[i + 1]!.split(s.placeholder).join(s.value);
      injected.add(s);
    }
  }
  return { headers: out, injected: [...injected] };
}

/** Raw response headers with every injected value replaced by its placeholder. */
export function scrubHeaders(raw: string[], injected: readonly Secret[]): string[] {
  return raw.map((v) => injected.reduce((acc, s) => acc.split(s.value).join(s.placeholder), v));
}

/**
 * A stream that replaces each value with its placeholder, also across chunk
 * boundaries (it holds back the last `longest value - 1` bytes until more
 * arrive or the stream ends).
 */
export class ScrubStream extends Transform {
  private readonly pairs: { value: Buffer; placeholder: Buffer }[];
  private readonly keep: number;
  private carry = Buffer.alloc(0);

  constructor(injected: readonly Secret[]) {
    super();
    this.pairs = injected.map((s) => ({
      value: Buffer.from(s.value),
      placeholder: Buffer.from(s.placeholder),
    }));
    this.keep = Math.max(0, ...this.pairs.map((p) => p.value.length - 1));
  }

  private replace(buf: Buffer): Buffer {
    for (const { value, placeholder } of this.pairs) {
      let at = buf.indexOf(value);
      if (at < 0) continue;
      const parts: Buffer[] = [];
      let from = 0;
      while (at >= 0) {
        parts.push(buf.subarray(from, at), placeholder);
        from = at + value.length;
        at = buf.indexOf(value, from);
      }
      parts.push(buf.subarray(from));
      buf = Buffer.concat(parts);
    }
    return buf;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    const all = this.replace(Buffer.concat([this.carry, chunk]));
    const cut = Math.max(0, all.length - this.keep);
    this.carry = Buffer.from(all.subarray(cut));
    done(null, all.subarray(0, cut));
  }

  override _flush(done: TransformCallback): void {
    done(null, this.replace(this.carry));
  }
}

const STORE = "network-secrets.json";

/** Keeps a sandbox's secret values on the host, in its state directory (never inside the sandbox). */
export function writeSecretValues(stateDir: string, values: Record<string, string>): void {
  const file = join(stateDir, STORE);
  if (Object.keys(values).length === 0) {
    rmSync(file, { force: true });
    return;
  }
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  writeFileSync(`${file}.tmp`, JSON.stringify(values), { mode: 0o600 });
  renameSync(`${file}.tmp`, file);
}

/** The values kept by {@link writeSecretValues}; none when there are none. */
export function readSecretValues(stateDir: string): Record<string, string> {
  try {
    return JSON.parse(readFileSync(join(stateDir, STORE), "utf8")) as Record<string, string>;
  } catch {
    return {};
  }
}

/** The secrets of stored settings with their values from `stateDir` (a secret without a value is left out). */
export function secretsOf(
  settings: { secrets?: Record<string, { hosts: string[]; headers?: string[]; placeholder: string }> },
  stateDir: string,
): Secret[] {
  const entries = Object.entries(settings.secrets ?? {});
  if (entries.length === 0) return [];
  const values = readSecretValues(stateDir);
  return entries.flatMap(([name, s]) =>
    values[name] === undefined
      ? []
      : [
          makeSecret(
            name,
            { value: values[name], hosts: s.hosts, ...(s.headers ? { headers: s.headers } : {}) },
            s.placeholder,
          ),
        ],
  );
}

/** Headers the host side adds to (or replaces in) requests to hosts matching `rule`. */
export interface HeaderRule {
  rule: Rule;
  /** [name (lower case), value] pairs. */
  headers: [string, string][];
}

/**
 * A checked header rule.
 * @throws InvalidArgumentError (a host that is not a name, a bad header name or value)
 */
export function makeHeaderRule(host: string, headers: Record<string, string>): HeaderRule {
  const rule = parseRule(host);
  if (rule.kind === "cidr")
    throw new InvalidArgumentError(`header rule ${JSON.stringify(host)}: hosts are names (TLS needs a name)`);
  if (typeof headers !== "object" || headers === null || Array.isArray(headers))
    throw new InvalidArgumentError(`header rule ${host}: headers must be an object of names to values`);
  const pairs = Object.entries(headers);
  if (pairs.length === 0 || pairs.length > 64)
    throw new InvalidArgumentError(`header rule ${host}: 1 to 64 headers`);
  for (const [k, v] of pairs) {
    if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$/.test(k))
      throw new InvalidArgumentError(`header rule ${host}: bad header name ${JSON.stringify(k)}`);
    if (typeof v !== "string" || v.length > 8192 || /[\r\n\0]/.test(v))
      throw new InvalidArgumentError(`header rule ${host}: bad value for ${k}`);
  }
  return { rule, headers: pairs.map(([k, v]) => [k.toLowerCase(), v]) };
}

/** The header rule for `name`:`port`: an exact name first, else the longest matching wildcard (rules are not merged). */
export function headerRuleFor(
  rules: readonly HeaderRule[],
  name: string,
  port: number,
): HeaderRule | undefined {
  const matching = rules.filter((r) => ruleMatches(r.rule, { name, port }));
  return (
    matching.find((r) => r.rule.kind === "name") ??
    matching.sort((a, b) => b.rule.text.length - a.rule.text.length)[0]
  );
}

/** Raw headers with the rule's headers put in place of any of the same name. */
export function applyHeaderRule(raw: string[], rule: HeaderRule): string[] {
  const names = new Set(rule.headers.map(([k]) => k));
  const out: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2)
    if (!names.has(raw[i]!.toLowerCase())) out.push(raw[i]!, raw[i + 1]!);
  for (const [k, v] of rule.headers) out.push(k, v);
  return out;
}

/** Header rules' values as secrets to scrub from answers (their values are credentials too). */
export function scrubbable(rule: HeaderRule | undefined): Secret[] {
  return (rule?.headers ?? []).map(([k, v]) => ({
    name: `header ${k}`,
    value: v,
    placeholder: `[${k} set by Kiln]`,
    hosts: [rule!.rule],
  }));
}

const HEADER_STORE = "network-headers.json";

/** Keeps a sandbox's header rules (host -> headers) on the host, in its state directory. */
export function writeHeaderRules(stateDir: string, rules: Record<string, Record<string, string>>): void {
  const file = join(stateDir, HEADER_STORE);
  if (Object.keys(rules).length === 0) {
    rmSync(file, { force: true });
    return;
  }
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  writeFileSync(`${file}.tmp`, JSON.stringify(rules), { mode: 0o600 });
  renameSync(`${file}.tmp`, file);
}

/** The header rules kept by {@link writeHeaderRules}, as kept; none when there are none. */
export function readHeaderRuleValues(stateDir: string): Record<string, Record<string, string>> {
  try {
    return JSON.parse(readFileSync(join(stateDir, HEADER_STORE), "utf8"));
  } catch {
    return {};
  }
}

/** The header rules kept by {@link writeHeaderRules}, checked. */
export function readHeaderRules(stateDir: string): HeaderRule[] {
  return Object.entries(readHeaderRuleValues(stateDir)).map(([host, headers]) =>
    makeHeaderRule(host, headers),
  );
}
