/**
 * QEMU as an unprivileged host uid: each VM's QEMU runs as root of a user
 * namespace mapping ids 0..65535 to the sandbox's own range of host ids
 * (id-ranges.ts), through the agent binary's `--idmap-exec` (id-stage.ts).
 * Every host path QEMU opens is idmapped at the stage, one by one: the kernel,
 * the initramfs, the template's rootfs image, the workspace image, and the
 * state directory's socket folder (the QMP and migration sockets). QEMU can
 * write nothing of the host's but the workspace image and that folder. Files stored as
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
import { basename, dirname } from "node:path";
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

/** QEMU's command line under the id mapping, and where it sees the socket folder. */
export interface MappedQemu {
  /** The whole command: the agent's `--idmap-exec` launcher, then `tail` with QEMU's paths staged. */
  command: string[];
  /** The state directory's socket folder as QEMU sees it (where it connects to the migration socket). */
  socketDir: string;
}

/**
 * The command that runs `tail` (`unshare --net -- qemu ARGS`, `qemuAt` being the index of QEMU's
 * first argument) as root of the range's user namespace, with every host path of QEMU's
 * arguments staged: each file by itself, each socket through its folder (`socketDir`, the state
 * directory's socket folder, is staged in any case: migration sockets are made there later).
 */
export function mappedQemu(
  agent: string,
  range: IdRange,
  socketDir: string,
  tail: readonly string[],
  qemuAt: number,
): MappedQemu {
  const stage = new IdStage();
  const staged = new Map<string, string>([[socketDir, stage.stage(socketDir)]]);
  const at = (source: string): string => {
    let to = staged.get(source);
    if (to === undefined) {
      to = stage.stage(source);
      staged.set(source, to);
    }
    return to;
  };
  const to = (path: string, use: "file" | "socket"): string =>
    // A socket of a VM saved by an earlier Kiln may lie in the state directory itself: its folder is staged.
    use === "socket" ? `${at(dirname(path))}/${basename(path)}` : at(path);
  const qemuArgs = tail.slice(qemuAt);
  const args = [...tail.slice(0, qemuAt), ...mapQemuPaths(qemuArgs, to)];
  // A network card's tap is made through /dev/net/tun, which a host may keep to host root (0600).
  const devices = hasNetworkCard(qemuArgs) ? [TUN_DEVICE] : [];
  return { command: stage.command(agent, range, "enter", args, devices), socketDir: staged.get(socketDir)! };
}
