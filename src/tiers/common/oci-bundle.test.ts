/** The OCI bundle of a sandbox: the security properties of its config.json. */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { MASKED_PATHS, type OciConfig, READONLY_PATHS, writeOciBundle } from "./oci-bundle.ts";
import { AGENT_DIR, AGENT_PATH } from "./templates.ts";

const MIB = 1024 * 1024;
const dir = mkdtempSync(join(tmpdir(), "kiln-oci-bundle-test-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const limits = { memoryBytes: 256 * MIB, pids: 100, cpuCount: 1.5, diskBytes: 1024 * MIB };
const bundle = writeOciBundle(join(dir, "bundle"), {
  rootfs: "/templates/t/rootfs",
  workspace: "/state/sb_x/workspace",
  agent: "/repo/agent/target/kiln-agent",
  limits,
  cgroupsPath: "/kiln/sb_x",
});
const config = JSON.parse(readFileSync(join(bundle, "config.json"), "utf8")) as OciConfig;

test("the root filesystem is the template, read-only", () => {
  assert.deepEqual(config.root, { path: "/templates/t/rootfs", readonly: true });
});

test("the process is the agent, root without capabilities or new privileges", () => {
  const p = config.process;
  assert.deepEqual(p.args, [AGENT_PATH]);
  assert.equal(p.cwd, "/workspace");
  assert.equal(p.terminal, false);
  assert.deepEqual(p.user, { uid: 0, gid: 0 });
  assert.equal(p.noNewPrivileges, true);
  for (const set of ["bounding", "effective", "inheritable", "permitted", "ambient"] as const) {
    assert.deepEqual(p.capabilities[set], [], `capability set ${set} is not empty`);
  }
  const nofile = p.rlimits.find((r) => r.type === "RLIMIT_NOFILE");
  assert.ok(nofile && nofile.soft > 0 && nofile.soft <= nofile.hard && nofile.hard <= 1_048_576);
  assert.ok(p.env.some((e) => e.startsWith("PATH=/")));
});

test("a new, empty network namespace and every other namespace but user", () => {
  const ns = config.linux.namespaces;
  for (const t of ["pid", "ipc", "uts", "mount", "network", "cgroup"]) {
    const n = ns.find((x) => x.type === t);
    assert.ok(n, `no ${t} namespace`);
    assert.equal(n.path, undefined, `${t} namespace joins an existing one`);
  }
  assert.equal(config.hostname, "kiln");
});

test("seccomp policy, masked and read-only paths", () => {
  const sc = config.linux.seccomp as {
    defaultAction: string;
    syscalls: { names: string[]; action: string }[];
  };
  assert.ok(sc, "no seccomp policy");
  const denied = sc.syscalls.filter((s) => s.action === "SCMP_ACT_ERRNO").flatMap((s) => s.names);
  for (const name of ["mount", "unshare", "setns", "bpf", "kexec_load", "ptrace", "clone3"]) {
    assert.ok(denied.includes(name), `${name} is not denied`);
  }
  for (const p of ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug", "/sys/firmware"]) {
    assert.ok(config.linux.maskedPaths.includes(p), `${p} is not masked`);
  }
  assert.deepEqual(config.linux.maskedPaths, [...MASKED_PATHS]);
  for (const p of ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]) {
    assert.ok(config.linux.readonlyPaths.includes(p), `${p} is not read-only`);
  }
  assert.deepEqual(config.linux.readonlyPaths, [...READONLY_PATHS]);
});

test("mounts: workspace, private /tmp, the agent read-only, /sys read-only", () => {
  const at = (d: string) => config.mounts.find((m) => m.destination === d);
  assert.equal(at("/proc")?.type, "proc");
  assert.equal(at("/dev")?.type, "tmpfs");
  const sys = at("/sys");
  assert.ok(sys?.options?.includes("ro") && sys.options.includes("nosuid") && sys.options.includes("noexec"));
  const tmp = at("/tmp");
  assert.equal(tmp?.type, "tmpfs");
  const size = Number(/^size=(\d+)$/.exec(tmp?.options?.find((o) => o.startsWith("size=")) ?? "")?.[1]);
  assert.ok(size > 0 && size <= limits.memoryBytes);
  const ws = at("/workspace");
  assert.equal(ws?.source, "/state/sb_x/workspace");
  assert.ok(ws?.options?.includes("rbind") && ws.options.includes("nosuid") && ws.options.includes("nodev"));
  const kilnDir = config.mounts.findIndex((m) => m.destination === AGENT_DIR);
  const agent = config.mounts.findIndex((m) => m.destination === AGENT_PATH);
  assert.ok(kilnDir >= 0 && agent > kilnDir, "the agent must be bound after its tmpfs");
  assert.equal(config.mounts[kilnDir]?.type, "tmpfs");
  assert.ok(config.mounts[kilnDir]?.options?.includes("ro"));
  assert.equal(config.mounts[agent]?.source, "/repo/agent/target/kiln-agent");
  assert.ok(config.mounts[agent]?.options?.includes("ro"));
  // No host path is exposed besides the workspace and the agent (and the root).
  const binds = config.mounts.filter((m) => m.type === "bind").map((m) => m.destination);
  assert.deepEqual(binds.sort(), [AGENT_PATH, "/workspace"].sort());
});

test("limits land on the sandbox's cgroup", () => {
  assert.equal(config.linux.cgroupsPath, "/kiln/sb_x");
  const r = config.linux.resources as {
    memory: { limit: number; swap: number };
    pids: { limit: number };
    cpu: { quota: number; period: number };
  };
  assert.deepEqual(r.memory, { limit: limits.memoryBytes, swap: limits.memoryBytes });
  assert.deepEqual(r.pids, { limit: 100 });
  assert.equal(r.cpu.quota / r.cpu.period, 1.5);
});

test("as an ordinary user: a new user namespace mapping only 0 to the user's ids, the agent's own directory at /.kiln", () => {
  const own = JSON.parse(
    readFileSync(
      join(
        writeOciBundle(join(dir, "self"), {
          rootfs: "/templates/t/rootfs",
          workspace: "/state/sb_x/workspace",
          agent: "/repo/agent/target/kiln-agent",
          agentDir: "/data/agent/agent-1-2",
          selfMap: { uid: 1234, gid: 5678 },
          limits,
        }),
        "config.json",
      ),
      "utf8",
    ),
  ) as OciConfig;
  assert.deepEqual(
    own.linux.namespaces.filter((n) => n.type === "user"),
    [{ type: "user" }],
  );
  assert.deepEqual(own.linux.uidMappings, [{ containerID: 0, hostID: 1234, size: 1 }]);
  assert.deepEqual(own.linux.gidMappings, [{ containerID: 0, hostID: 5678, size: 1 }]);
  assert.equal(own.linux.cgroupsPath, undefined);
  const agentMounts = own.mounts.filter((m) => m.destination.startsWith(AGENT_DIR));
  assert.deepEqual(agentMounts, [
    {
      destination: AGENT_DIR,
      type: "bind",
      source: "/data/agent/agent-1-2",
      options: ["bind", "ro", "nosuid", "nodev"],
    },
  ]);
  // Root's bundle (above) has no user namespace of its own and the agent file bound into a tmpfs.
  assert.equal(config.linux.uidMappings, undefined);
  assert.deepEqual(
    config.mounts.filter((m) => m.destination.startsWith(AGENT_DIR)).map((m) => [m.destination, m.type]),
    [
      [AGENT_DIR, "tmpfs"],
      [AGENT_PATH, "bind"],
    ],
  );
});
