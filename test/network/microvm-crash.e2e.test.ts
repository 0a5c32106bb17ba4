/**
 * A Kiln process killed with SIGKILL while it runs a microvm sandbox with
 * egress leaves none of its network behind: no interface in the host's
 * namespace at any time, and once the guest has ended by itself, no process
 * or file descriptor holding QEMU's namespace (the tap, the bridge) or the
 * private namespace M (the listeners). The next Kiln recovers the sandbox;
 * its workspace is removed with it. Skipped with its reason where the tier
 * cannot run.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { Kiln } from "../../src/index.ts";
import { tierRequired } from "../conformance/suite.ts";
import { processesMentioning } from "../host-state.ts";

const CHILD = `
import { Kiln } from ${JSON.stringify(join(import.meta.dirname, "..", "..", "src", "index.ts"))};
const kiln = await Kiln.open({ dataDir: process.argv[1], networkHosts: { "files.test": ["198.51.100.1"] } });
const sb = await kiln.create({ tier: "microvm", network: { allow: ["files.test:443"] } });
const r = await sb.commands.run("getent hosts files.test");
process.stdout.write(sb.id + " " + (r.exitCode === 0 ? "resolved" : "unresolved") + "\\n");
setInterval(() => {}, 1000);
`;

/** The network namespaces that `pid` is in or holds a descriptor of (`net:[inode]`). */
function netnsOf(pid: number): Set<string> {
  const out = new Set<string>();
  try {
    out.add(readlinkSync(`/proc/${pid}/ns/net`));
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      try {
        const l = readlinkSync(`/proc/${pid}/fd/${fd}`);
        if (l.startsWith("net:")) out.add(l);
      } catch {}
    }
  } catch {}
  return out;
}

/** Every process in or holding one of `spaces`. */
function holders(spaces: Set<string>): number[] {
  return readdirSync("/proc")
    .filter((p) => /^\d+$/.test(p))
    .map(Number)
    .filter((p) => [...netnsOf(p)].some((n) => spaces.has(n)));
}

/** Links of the host's namespace with the names Kiln gives in Q and M (other work on the host adds links of its own). */
function oursOnHost(): string[] {
  return readFileSync("/proc/net/dev", "utf8")
    .split("\n")
    .slice(2)
    .map((l) => l.split(":")[0]!.trim())
    .filter((n) => ["tap0", "br0", "gw0"].includes(n));
}

let dataDir = "";
let status: true | string = "not probed";
before(async () => {
  dataDir = mkdtempSync(join(tmpdir(), "kiln-vm-crash-net-"));
  const kiln = await Kiln.open({ dataDir });
  const s = (await kiln.doctor()).find((x) => x.tier === "microvm");
  status = s?.available ? true : (s?.reason ?? "not listed by doctor");
  await kiln.close();
});
after(() => rmSync(dataDir, { recursive: true, force: true }));

test("a killed Kiln leaves no network of a microvm sandbox behind", async (t) => {
  if (status !== true) {
    if (tierRequired("microvm")) assert.fail(`tier microvm required but unavailable: ${status}`);
    return t.skip(`tier microvm unavailable: ${status}`);
  }
  assert.deepEqual(oursOnHost(), [], "the host had none of these names before");
  const child = spawn(process.execPath, ["--input-type=module", "-e", CHILD, dataDir], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const line = await new Promise<string>((resolve, reject) => {
    let out = "";
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
      if (out.includes("\n")) resolve(out.trim());
    });
    child.once("exit", (code) => reject(new Error(`the child Kiln exited (${code})`)));
  });
  const [id, resolved] = line.split(" ");
  assert.equal(resolved, "resolved", "positive control: the guest's DNS is Kiln's, through M");
  const [qemu] = processesMentioning(`${id},process=kiln-vm`);
  assert.ok(qemu, "QEMU runs");
  // QEMU's own namespace (Q), and M, which only Kiln holds (a descriptor).
  const spaces = new Set([...netnsOf(qemu), ...netnsOf(child.pid!)]);
  spaces.delete(readlinkSync("/proc/self/ns/net"));
  assert.equal(spaces.size, 2, `Q and M: ${[...spaces].join(" ")}`);
  // Positive control for the name check: Q has them.
  assert.match(readFileSync(`/proc/${qemu}/net/dev`, "utf8"), /tap0:[\s\S]*br0:|br0:[\s\S]*tap0:/);
  assert.deepEqual(oursOnHost(), [], "no interface in the host's namespace");
  child.kill("SIGKILL");
  await new Promise((r) => child.once("exit", r));
  // The agent sees its input end and powers the guest off; QEMU, and Q with it, end.
  const deadline = Date.now() + 60_000;
  while (holders(spaces).length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 250));
  assert.deepEqual(holders(spaces), [], "nothing holds Q or M");
  assert.deepEqual(oursOnHost(), []);
  // The next Kiln recovers the sandbox and removes it.
  const kiln = await Kiln.open({ dataDir });
  try {
    await (await kiln.connect(id!)).kill();
  } finally {
    await kiln.close();
  }
});
