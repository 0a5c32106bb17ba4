/**
 * The `gvisor` tier: an OCI container run by runsc, gVisor's runtime. The
 * sandbox's syscalls are served by gVisor's user-space kernel (the Sentry),
 * not the host kernel; files reach it through the Gofer. The bundle is the
 * oci tier's plus the differences below. Runtime: the system's runsc on the
 * ptrace platform, or Kiln's own newer runsc on systrap (see runtimes.ts and
 * docs/tiers/gvisor.md).
 */
import { OciTierBackend } from "../common/oci-tier.ts";
import { GVISOR_PLATFORMS, runscBuilds } from "./runtimes.ts";

/**
 * runsc's global flags: no network at all (only loopback inside), and the
 * bundle's seccomp policy enforced by the Sentry for the sandbox's processes
 * (runsc ignores it without `--oci-seccomp`). The platform comes with the build.
 */
export const RUNSC_FLAGS: readonly string[] = Object.freeze(["--network=none", "--oci-seccomp"]);

/**
 * runsc's global flags for a sandbox with egress: gVisor's netstack on the
 * interfaces of the namespace Kiln wired for it (one veth to Kiln's egress
 * path; see src/tiers/common/egress-netns.ts), instead of none.
 */
export const RUNSC_EGRESS_FLAGS: readonly string[] = Object.freeze(["--network=sandbox", "--oci-seccomp"]);

/**
 * What runsc of a sandbox with egress is started under: a mount namespace of
 * its own where /proc/sys/net is an empty tmpfs. Debian 12's runsc (20221219)
 * refuses `--network=sandbox` when /proc/sys/net/core/rmem_default exists,
 * taking it for the sign of the host's namespace; recent kernels show it in
 * every namespace. The sandbox's own /proc is gVisor's, untouched.
 */
export const RUNSC_EGRESS_RUN_UNDER: readonly string[] = Object.freeze([
  "unshare",
  "--mount",
  "--propagation",
  "private",
  "--",
  "sh",
  "-c",
  'mount -t tmpfs -o size=4k,mode=555 none /proc/sys/net && exec "$@"',
  "sh",
]);

/**
 * The host pids cgroup of a gVisor sandbox holds the Sentry's and Gofer's
 * threads and stub threads (ptrace and systrap alike) for every guest thread (about 8 host
 * tasks per guest process, pooled after they end). The guest's own process
 * count is limited by RLIMIT_NPROC inside the Sentry; the host cap only keeps
 * a runaway sandbox from exhausting the host's pids.
 */
export function hostPidsCap(pids: number): number {
  return 128 + 16 * pids;
}

/** The gvisor tier's driver: the shared OCI-runtime driver with runsc. */
export class GvisorBackend extends OciTierBackend {
  constructor() {
    super({
      tier: "gvisor",
      binary: "runsc",
      displayName: "runsc (gVisor)",
      flags: RUNSC_FLAGS,
      runtimes: runscBuilds(),
      noRuntimes: `KILN_GVISOR_PLATFORM=${process.env.KILN_GVISOR_PLATFORM} is not one of ${GVISOR_PLATFORMS.join(", ")}`,
      trialTimeoutMs: 30_000,
      checkpoint: true,
      egress: "before-start",
      egressFlags: RUNSC_EGRESS_FLAGS,
      egressRunUnder: RUNSC_EGRESS_RUN_UNDER,
      idmap: "inside",
      rootless: true,
      bundleExtra: (pids) => ({
        pidsInside: { hostPids: hostPidsCap(pids) },
        // A seccomp rule on clone3 hangs Debian 12's runsc's (20221219) processes at their first fork.
        seccompOmit: ["clone3"],
      }),
    });
  }
}
