/**
 * Egress for an in-process interpreter (the virtual tier's `curl`): a fetch
 * that goes through the same policy, the same resolve-once-check-dial rule
 * and the same audit log as the real tiers' egress path. Each request (and
 * each redirect hop) is checked by name and address, dialled at the checked
 * address, and verified against the system's roots plus any the server's
 * owner adds (`KILN_NETWORK_EXTRA_CA`, a PEM file).
 */
import http from "node:http";
import type { Duplex } from "node:stream";
import tls from "node:tls";
import type { Egress } from "./egress.ts";
import { trustedRoots } from "./roots.ts";
import {
  applyHeaderRule,
  headerRuleFor,
  injectSecrets,
  placeholderIn,
  type Secret,
  scrubbable,
  scrubHeaders,
} from "./secrets.ts";
import { UpstreamProxyError } from "./upstream-proxy.ts";

/** What a fetch returns (the shape just-bash's `curl` takes). */
export interface EgressFetchResult {
  status: number;
  statusText: string;
  headers: Record<string, string>;
  body: Uint8Array;
  url: string;
}

/** Options of one fetch. */
export interface EgressFetchOptions {
  method?: string;
  headers?: Headers | Record<string, string>;
  body?: string | Uint8Array;
  followRedirects?: boolean;
  timeoutMs?: number;
  maxRedirects?: number;
  signal?: AbortSignal;
}

/** Largest response body kept, bytes (10 MiB); larger is an error. */
export const MAX_FETCH_BODY_BYTES = 10 * 1024 * 1024;

/** A refusal by the policy, with the rule. */
export class EgressRefusedError extends Error {
  /** `host:port` refused. */
  readonly target: string;
  /** The rule that refused it. */
  readonly rule: string;

  constructor(target: string, rule: string) {
    super(`Kiln egress policy: ${target} refused by rule "${rule}"`);
    this.name = "EgressRefusedError";
    this.target = target;
    this.rule = rule;
  }
}

/** A fetch through `egress`'s policy. Rejects with {@link EgressRefusedError} when refused. */
export function egressFetch(egress: Egress) {
  // Read now, not during a script: the interpreter forbids reading the environment while one runs.
  const ca = trustedRoots();
  return async function fetchThroughEgress(
    url: string,
    options: EgressFetchOptions = {},
  ): Promise<EgressFetchResult> {
    let current = new URL(url);
    let method = (options.method ?? "GET").toUpperCase();
    let body = options.body;
    const max = options.followRedirects === false ? 0 : Math.min(options.maxRedirects ?? 20, 20);
    for (let hop = 0; ; hop++) {
      const r = await once(egress, current, method, headersOf(options.headers), body, options, ca);
      const location = r.headers.location;
      if (location && [301, 302, 303, 307, 308].includes(r.status) && hop < max) {
        current = new URL(location, current);
        if (r.status === 303 || ((r.status === 301 || r.status === 302) && method === "POST")) {
          method = "GET";
          body = undefined;
        }
        continue;
      }
      return r;
    }
  };
}

function headersOf(h: EgressFetchOptions["headers"]): Record<string, string> {
  if (!h) return {};
  if (h instanceof Headers) return Object.fromEntries(h.entries());
  return { ...h };
}

async function once(
  egress: Egress,
  url: URL,
  method: string,
  headers: Record<string, string>,
  body: string | Uint8Array | undefined,
  options: EgressFetchOptions,
  ca: string[],
): Promise<EgressFetchResult> {
  if (url.protocol !== "http:" && url.protocol !== "https:")
    throw new Error(`unsupported URL scheme ${url.protocol}`);
  const tlsOn = url.protocol === "https:";
  const port = url.port ? Number(url.port) : tlsOn ? 443 : 80;
  const host = url.hostname.replace(/^\[|\]$/g, "");
  const atMs = Date.now();
  const v = await egress.check(host, port);
  const path = `${url.pathname}${url.search}`;
  const base = {
    kind: tlsOn ? ("tls" as const) : ("http" as const),
    atMs,
    ...(v.name ? { host: v.name } : {}),
    ...(v.address ? { address: v.address.toString() } : {}),
    port,
    method,
    path: path.slice(0, 512),
    rule: v.rule,
  };
  // Secrets: the same rules as the real tiers' path (see secrets.ts): values in allowed headers
  // of HTTPS requests to their hosts only, taken back out of the answer.
  const raw = Object.entries(headers).flat();
  let injected: Secret[] = [];
  if (v.allowed && v.address && egress.secretList.length > 0) {
    const leaked = placeholderIn(egress.secretList, [], path);
    const r = injectSecrets(egress.secretList, raw, v.name ?? host, port);
    const refusal = leaked
      ? `secret ${leaked.name} outside a header`
      : "refused" in r
        ? `secret ${r.refused.name} not for ${v.name ?? host}`
        : r.injected.length > 0 && !tlsOn
          ? `secret ${r.injected[0]!.name} over plain http`
          : undefined;
    if (refusal) {
      v.allowed = false;
      v.rule = refusal;
    } else if (!("refused" in r)) {
      injected = r.injected;
      headers = {};
      for (let i = 0; i + 1 < r.headers.length; i += 2) headers[r.headers[i]!] = r.headers[i + 1]!;
      if (injected.length > 0) base.rule = `${v.rule}; secret ${injected.map((s) => s.name).join(", ")}`;
    }
  }
  // Header rules: over HTTPS only; their values are taken back out of the answer too.
  const headerRule =
    v.allowed && tlsOn && v.name ? headerRuleFor(egress.headerRuleList, v.name, port) : undefined;
  if (headerRule) {
    const applied = applyHeaderRule(Object.entries(headers).flat(), headerRule);
    headers = {};
    for (let i = 0; i + 1 < applied.length; i += 2) headers[applied[i]!] = applied[i + 1]!;
    injected = [...injected, ...scrubbable(headerRule)];
    base.rule = `${base.rule}; headers ${headerRule.rule.text}`;
  }
  if (!v.allowed || !v.address) {
    egress.record({
      ...base,
      rule: v.rule,
      allowed: false,
      status: 403,
      bytesUp: 0,
      bytesDown: 0,
      durationMs: 0,
    });
    throw new EgressRefusedError(`${v.name ?? host}:${port}`, v.rule);
  }
  const sent = body === undefined ? undefined : Buffer.from(body);
  return new Promise((resolve, reject) => {
    // Dialled at the checked address, through the upstream proxy when the policy has one (never direct then).
    const createConnection = (_: unknown, done: (err: Error | null, socket: Duplex) => void): undefined => {
      egress.connectUpstream(v.address!.toString(), port).then(
        (raw) =>
          done(
            null,
            tlsOn
              ? tls.connect({ socket: raw, servername: v.name ?? host, ca, ALPNProtocols: ["http/1.1"] })
              : raw,
          ),
        (e: Error) => done(e, undefined as unknown as Duplex),
      );
      return undefined;
    };
    const req = http.request({
      method,
      path,
      headers: { ...headers, host: url.host },
      setHost: false,
      createConnection,
      timeout: Math.min(options.timeoutMs ?? 30_000, 30_000),
      ...(options.signal ? { signal: options.signal } : {}),
    });
    req.on("timeout", () => req.destroy(new Error("request timed out")));
    req.on("error", (e) => {
      const proxied = e instanceof UpstreamProxyError;
      egress.record({
        ...base,
        allowed: !proxied,
        rule: `${v.rule}; ${proxied ? e.reason : e.message}`,
        bytesUp: sent?.length ?? 0,
        bytesDown: 0,
        durationMs: Date.now() - atMs,
      });
      reject(e);
    });
    req.on("response", (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      // At the sandbox's bandwidth cap, if it has one.
      const body = res.pipe(egress.throttle("down"));
      body.on("data", (c: Buffer) => {
        size += c.length;
        if (size > MAX_FETCH_BODY_BYTES)
          req.destroy(new Error(`response larger than ${MAX_FETCH_BODY_BYTES} bytes`));
        else chunks.push(c);
      });
      body.on("end", () => {
        egress.record({
          ...base,
          allowed: true,
          status: res.statusCode ?? 0,
          bytesUp: sent?.length ?? 0,
          bytesDown: size,
          durationMs: Date.now() - atMs,
        });
        const out: Record<string, string> = {};
        for (const [k, val] of Object.entries(res.headers))
          if (val !== undefined)
            out[k] = scrubHeaders([Array.isArray(val) ? val.join(", ") : val], injected)[0]!;
        let got = Buffer.concat(chunks);
        for (const s of injected)
          got = Buffer.from(got.toString("latin1").split(s.value).join(s.placeholder), "latin1");
        resolve({
          status: res.statusCode ?? 0,
          statusText: res.statusMessage ?? "",
          headers: out,
          body: new Uint8Array(got),
          url: url.toString(),
        });
      });
    });
    const upload = egress.throttle("up");
    upload.pipe(req);
    upload.end(sent);
  });
}
