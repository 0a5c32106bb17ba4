/**
 * The DNS answerer inside a sandbox with egress: every query is answered
 * here, on the host, from the policy alone. An allowed name gets a synthetic
 * IPv4 address (which the tier routes to the egress path, where the
 * connection is checked again); any other name gets NXDOMAIN; no query is
 * ever forwarded upstream, so DNS carries nothing out of the sandbox. IPv6
 * questions get an empty answer (the sandbox has no IPv6 route). Messages
 * are decoded and encoded by dns-packet.
 */
import dnsPacket from "dns-packet";
import type { NetworkAuditEntry } from "../core/types.ts";
import type { NetworkPolicy } from "./policy.ts";
import { canonicalName } from "./rules.ts";

/** What the answerer needs. */
export interface DnsOptions {
  /** The sandbox's policy. */
  policy: NetworkPolicy;
  /** The synthetic address to answer for an allowed name. */
  addressFor(name: string): string;
  /** Receives one entry per question. */
  audit(entry: Omit<NetworkAuditEntry, "id">): void;
}

/** Largest DNS message accepted, bytes. */
export const MAX_DNS_MESSAGE_BYTES = 4096;

/** Answers one DNS query message; undefined when it is not one (then nothing is sent back). */
export function answerDns(query: Uint8Array, o: DnsOptions): Buffer | undefined {
  if (query.length > MAX_DNS_MESSAGE_BYTES) return undefined;
  let q: dnsPacket.Packet;
  try {
    q = dnsPacket.decode(Buffer.from(query));
  } catch {
    return undefined;
  }
  if (q.type !== "query" || !q.questions || q.questions.length !== 1) return undefined;
  const question = q.questions[0]!;
  const name = canonicalName(question.name);
  const atMs = Date.now();
  const verdict = name ? o.policy.decideName(name) : { allowed: false, rule: "bad host name" };
  o.audit({
    kind: "dns",
    atMs,
    host: (name ?? question.name).slice(0, 255),
    method: question.type,
    allowed: verdict.allowed,
    rule: verdict.rule,
    bytesUp: query.length,
    bytesDown: 0,
    durationMs: 0,
  });
  const answers: dnsPacket.Answer[] =
    verdict.allowed && name && question.type === "A"
      ? [{ type: "A", name: question.name, ttl: 30, class: "IN", data: o.addressFor(name) }]
      : [];
  return dnsPacket.encode({
    type: "response",
    id: q.id ?? 0,
    // The response code is the low four bits of the flags (3: NXDOMAIN).
    flags:
      (dnsPacket.RECURSION_DESIRED & (q.flags ?? 0)) |
      dnsPacket.RECURSION_AVAILABLE |
      dnsPacket.AUTHORITATIVE_ANSWER |
      (verdict.allowed ? 0 : 3),
    questions: [question],
    answers,
  } as dnsPacket.Packet);
}
