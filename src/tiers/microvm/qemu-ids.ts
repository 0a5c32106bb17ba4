/**
 * QEMU as an unprivileged host uid: each VM's QEMU runs as root of a user
 * namespace mapping ids 0..65535 to the sandbox's own range of host ids
 * (id-ranges.ts), through the agent binary's `--idmap-exec` (id-stage.ts).
 * Every host path QEMU opens is idmapped at the stage: the state directory
 * (the workspace image, the QMP and migration sockets) and, one by one, the
 * kernel, the initramfs and the template's rootfs image. Files stored as
 * uid 0 are uid 0 to QEMU, and what it writes is stored as uid 0, so the
 * images, the pause and boot states and the snapshots are as before. QEMU's
 * network namespace (`unshare --net`, made inside) belongs to that user
 * namespace: QEMU makes its tap there (through a node of /dev/net/tun of its
 * own, owned by the range's root: a host may keep the device to root), and
 * Kiln, host root, wires it.
 *
 * Not under KVM: QEMU opens /dev/kvm by path, which only host root (and the
 * `kvm` group) may; root of a user namespace is neither.
 */
import { relative } from "node:path";
import { type IdRange, idRangesUnavailable } from "../common/id-ranges.ts";
import { IdStage } from "../common/id-stage.ts";
import { type Accel, hasNetworkCard, mapQemuPaths } from "./qemu-args.ts";

/** The device QEMU opens to make its tap. */
const TUN_DEVICE = "/dev/net/tun";

/** Why QEMU runs as host root here, or undefined when it runs as the sandbox's range. */
export function qemuIdsUnavailable(accel: Accel): string | undefined {
  if (accel === "kvm")
    return "under KVM QEMU opens /dev/kvm, which root of a user namespace cannot (only host root and the kvm group)";
  return idRangesUnavailable();
}

/** QEMU's command line under the id mapping, and where it sees the state directory. */
export interface MappedQemu {
  /** The whole command: the agent's `--idmap-exec` launcher, then `tail` with QEMU's paths staged. */
  command: string[];
  /** The state directory as QEMU sees it (where it connects to the migration socket). */
  stateDir: string;
}

/**
 * The command that runs `tail` (`unshare --net -- qemu ARGS`, `qemuAt` being the index of QEMU's
 * first argument) as root of the range's user namespace, with every host path of QEMU's
 * arguments staged: those below `stateDir` through the staged state directory, the others as
 * files (or, for a socket QEMU makes, their folder).
 */
export function mappedQemu(
  agent: string,
  range: IdRange,
  stateDir: string,
  tail: readonly string[],
  qemuAt: number,
): MappedQemu {
  const stage = new IdStage();
  const stagedState = stage.stage(stateDir);
  const seen = new Map<string, string>();
  const to = (path: string, use: "file" | "socket"): string => {
    const rel = relative(stateDir, path);
    if (rel !== "" && !rel.startsWith("..") && !rel.startsWith("/")) return `${stagedState}/${rel}`;
    const source = use === "socket" ? path.slice(0, path.lastIndexOf("/")) || "/" : path;
    let at = seen.get(source);
    if (at === undefined) {
      at = stage.stage(source);
      seen.set(source, at);
    }
    return use === "socket" ? `${at}/${path.slice(path.lastIndexOf("/") + 1)}` : at;
  };
  const qemuArgs = tail.slice(qemuAt);
  const args = [...tail.slice(0, qemuAt), ...mapQemuPaths(qemuArgs, to)];
  // A network card's tap is made through /dev/net/tun, which a host may keep to host root (0600).
  const devices = hasNetworkCard(qemuArgs) ? [TUN_DEVICE] : [];
  return { command: stage.command(agent, range, "enter", args, devices), stateDir: stagedState };
}
