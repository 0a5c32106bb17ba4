import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { KilnError } from "../core/errors.ts";
import { blockedRange, parseAddress } from "./address.ts";
import { hasEgress, NetworkPolicy, resolveNetwork } from "./policy.ts";
import { parseRule } from "./rules.ts";

const code = (f: () => unknown) => {
  try {
    f();
  } catch (e) {
    return e instanceof KilnError ? e.code : `not a KilnError: ${e}`;
  }
  return "no error";
};

const policy = (o: object) => new NetworkPolicy(resolveNetwork(o));
const at = (p: NetworkPolicy, host: string, port = 443) => {
  const address = parseAddress(host);
  return p.decide(address ? { address, port } : { name: host, port });
};

test("no option, an empty option and egress none without rules all mean no network", () => {
  for (const o of [undefined, {}, { egress: "none" }, { egress: "none", deny: ["x.test"] }])
    assert.equal(hasEgress(resolveNetwork(o)), false);
  assert.equal(hasEgress(resolveNetwork({ allow: ["x.test"] })), true);
  assert.equal(hasEgress(resolveNetwork({ egress: "all" })), true);
});

test("rules are canonicalised: case, final dot, IDN, address spellings, CIDR host bits", () => {
  const s = resolveNetwork({
    allow: [
      "Files.TEST.",
      "*.Example.com:443",
      "bücher.example",
      "0x7f.1",
      "[::FFFF:7f00:1]:80",
      "198.51.100.77/24",
      "2001:DB8::1/32",
    ],
  });
  assert.deepEqual(s.allow, [
    "files.test",
    "*.example.com:443",
    "xn--bcher-kva.example",
    "127.0.0.1",
    "127.0.0.1:80",
    "198.51.100.0/24",
    "2001:db8::/32",
  ]);
});

test("bad options are invalid_argument", () => {
  for (const o of [
    "all",
    [],
    { egress: "some" },
    { allow: "x.test" },
    { allow: [""] },
    { allow: [42] },
    { allow: ["a..b"] },
    { allow: ["x.test:0"] },
    { allow: ["x.test:65536"] },
    { allow: ["x.test:http"] },
    { allow: ["*.*.test"] },
    { allow: ["a*.test"] },
    { allow: ["1.2.3.4/33"] },
    { allow: ["-bad.test"] },
    { allow: ["x".repeat(301)] },
    { allow: Array.from({ length: 1001 }, (_, i) => `h${i}.test`) },
    { other: 1 },
  ])
    assert.equal(
      code(() => resolveNetwork(o)),
      "invalid_argument",
      JSON.stringify(o).slice(0, 80),
    );
});

test("allow-list: exact names, wildcards (not the apex), ports", () => {
  const p = policy({ allow: ["files.test", "*.api.test", "git.test:22"] });
  assert.deepEqual(at(p, "files.test"), { allowed: true, rule: "allow files.test" });
  assert.deepEqual(at(p, "FILES.test".toLowerCase(), 80), { allowed: true, rule: "allow files.test" });
  assert.equal(at(p, "a.b.api.test").allowed, true);
  assert.deepEqual(at(p, "api.test"), { allowed: false, rule: "default deny" });
  assert.equal(at(p, "evilapi.test").allowed, false);
  assert.equal(at(p, "files.test.evil.test").allowed, false);
  assert.equal(at(p, "git.test", 22).allowed, true);
  assert.equal(at(p, "git.test", 443).allowed, false);
  assert.equal(at(p, "other.test").rule, "default deny");
});

test("allow wins over deny; deny narrows egress all", () => {
  const p = policy({ egress: "all", allow: ["ok.bad.test"], deny: ["*.bad.test", "203.0.113.0/24"] });
  assert.equal(at(p, "ok.bad.test").allowed, true);
  assert.deepEqual(at(p, "x.bad.test"), { allowed: false, rule: "deny *.bad.test" });
  assert.deepEqual(at(p, "203.0.113.9"), { allowed: false, rule: "deny 203.0.113.0/24" });
  assert.deepEqual(at(p, "198.51.100.1"), { allowed: true, rule: "egress all" });
  assert.equal(p.decideName("x.bad.test").allowed, false);
  assert.equal(p.decideName("anything.test").allowed, true);
});

test("blocked ranges stay blocked under egress all and under name rules, in every spelling", () => {
  const p = policy({ egress: "all", allow: ["files.test"] });
  for (const a of [
    "127.0.0.1",
    "2130706433",
    "0177.0.0.1",
    "0x7f000001",
    "127.1",
    "0.0.0.0",
    "0",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.1",
    "100.64.0.1",
    "169.254.169.254",
    "0xa9fea9fe",
    "::1",
    "[::1]",
    "::",
    "::ffff:127.0.0.1",
    "::ffff:169.254.169.254",
    "::ffff:a9fe:a9fe",
    "64:ff9b::a9fe:a9fe",
    "fc00::1",
    "fd12:3456::1",
    "fe80::1%eth0",
    "2002:a9fe:a9fe::1",
    "224.0.0.1",
  ]) {
    const d = at(p, a);
    assert.equal(d.allowed, false, a);
    assert.match(d.rule, /^blocked /, a);
  }
  // A name rule does not open a blocked address the name resolves to.
  assert.equal(
    p.decide({ name: "files.test", address: parseAddress("10.0.0.1")!, port: 443 }).allowed,
    false,
  );
  assert.equal(p.answerable(parseAddress("10.0.0.1")!), false);
  assert.equal(p.answerable(parseAddress("198.51.100.1")!), true);
});

test("an address rule opens a blocked range explicitly", () => {
  const p = policy({ allow: ["10.9.0.0/16", "127.0.0.1:8080"] });
  assert.deepEqual(at(p, "10.9.1.1"), { allowed: true, rule: "allow 10.9.0.0/16" });
  assert.equal(at(p, "10.8.1.1").allowed, false);
  assert.equal(at(p, "127.0.0.1", 8080).allowed, true);
  assert.equal(at(p, "127.0.0.1", 8081).allowed, false);
  assert.equal(at(p, "::ffff:10.9.3.3").allowed, true);
});

test("property: every spelling of a blocked IPv4 address is blocked", () => {
  const blocked = fc.oneof(
    fc.tuple(fc.constant(127), fc.nat(255), fc.nat(255), fc.nat(255)),
    fc.tuple(fc.constant(10), fc.nat(255), fc.nat(255), fc.nat(255)),
    fc.tuple(fc.constant(169), fc.constant(254), fc.nat(255), fc.nat(255)),
    fc.tuple(fc.constant(100), fc.integer({ min: 64, max: 127 }), fc.nat(255), fc.nat(255)),
    fc.tuple(fc.constant(192), fc.constant(168), fc.nat(255), fc.nat(255)),
  );
  const p = policy({ egress: "all" });
  fc.assert(
    fc.property(blocked, fc.nat(4), (b, form) => {
      const n = ((b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3]) >>> 0;
      const spellings = [
        b.join("."),
        String(n),
        `0x${n.toString(16)}`,
        b.map((x) => `0${x.toString(8)}`).join("."),
        `::ffff:${b.join(".")}`,
        `[::ffff:${((b[0] << 8) | b[1]).toString(16)}:${((b[2] << 8) | b[3]).toString(16)}]`,
      ];
      const s = spellings[form % spellings.length]!;
      const a = parseAddress(s);
      assert.ok(a, s);
      assert.ok(blockedRange(a), s);
      assert.equal(at(p, s).allowed, false, s);
    }),
    { numRuns: 500 },
  );
});

test("property: a parsed rule's canonical text parses to itself", () => {
  const label = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?$/);
  const rule = fc.oneof(
    fc
      .tuple(fc.array(label, { minLength: 1, maxLength: 4 }), fc.option(fc.integer({ min: 1, max: 65535 })))
      .map(([ls, port]) => `${ls.join(".")}.test${port ? `:${port}` : ""}`),
    fc.array(label, { minLength: 1, maxLength: 3 }).map((ls) => `*.${ls.join(".")}.test`),
    fc.tuple(fc.ipV4(), fc.integer({ min: 0, max: 32 })).map(([ip, bits]) => `${ip}/${bits}`),
    fc.ipV6().map((ip) => `[${ip}]:443`),
  );
  fc.assert(
    fc.property(rule, (r) => {
      const once = parseRule(r).text;
      assert.equal(parseRule(once).text, once);
    }),
    { numRuns: 500 },
  );
});

test("property: with egress all and no rules, a name is allowed exactly when no deny rule names it", () => {
  fc.assert(
    fc.property(fc.domain(), fc.domain(), (a, b) => {
      const p = policy({ egress: "all", deny: [a] });
      const expect = parseRule(a).text !== parseRule(b).text;
      assert.equal(p.decide({ name: parseRule(b).text, port: 443 }).allowed, expect);
    }),
    { numRuns: 300 },
  );
});
