/** The cap on a sandbox's audit-log growth, against a DNS-tunnelling flood answered by Kiln's DNS. */
import assert from "node:assert/strict";
import { test } from "node:test";
import dnsPacket from "dns-packet";
import type { NetworkAuditEntry } from "../core/types.ts";
import { limitAuditRate } from "./audit-limit.ts";
import { answerDns } from "./dns.ts";
import { NetworkPolicy, resolveNetwork } from "./policy.ts";

const policy = new NetworkPolicy(resolveNetwork({ allow: ["files.test"] }));

function ask(name: string, audit: (e: Omit<NetworkAuditEntry, "id">) => void): void {
  answerDns(dnsPacket.encode({ type: "query", id: 1, questions: [{ type: "A", name }] }), {
    policy,
    addressFor: () => "198.18.1.1",
    audit,
  });
}

test("a DNS flood writes at most the rate, the rest counted in one entry; the log takes entries again after", async () => {
  const written: Omit<NetworkAuditEntry, "id">[] = [];
  const limited = limitAuditRate((e) => written.push(e), 100);
  // Positive control: under the rate, every question is written.
  for (let i = 0; i < 50; i++) ask(`q${i}.files.test`, (e) => limited.record(e));
  assert.equal(written.length, 50);
  for (let i = 0; i < 10_000; i++)
    ask(`${i.toString(36)}x${"a".repeat(40)}.other.test`, (e) => limited.record(e));
  // A burst of 100 (50 used above), then 100 a second: the flood takes well under half a second.
  assert.ok(written.length <= 100 + 50, `a flood of 10,000 wrote ${written.length}`);
  await new Promise((r) => setTimeout(r, 1200));
  const summaries = written.filter((e) => e.kind === "audit");
  assert.ok(summaries.length > 0 && summaries.length < 20, "the drops are in the log, in a few entries");
  const dropped = summaries.reduce((n, e) => n + Number(/(\d+) entries dropped/.exec(e.rule)?.[1]), 0);
  assert.equal(
    dropped + written.filter((e) => e.kind === "dns").length,
    10_050,
    "every question is accounted for",
  );
  const before = written.length;
  ask("after.files.test", (e) => limited.record(e));
  assert.equal(written.length, before + 1);
  assert.equal(written.at(-1)?.host, "after.files.test");
  limited.close();
});
