/**
 * The runsc builds the gvisor tier can run, and which it tries first (the first whose trial
 * container runs is used; doctor names it, and why the ones before it were passed over):
 *  - the system's runsc (Debian 12's, 20221219) on the ptrace platform;
 *  - Kiln's own runsc, Debian 13's build (20240729), on the systrap platform: it intercepts the
 *    sandbox's syscalls with seccomp traps instead of ptrace stops, and needs no KVM.
 *    scripts/install-runsc.sh installs it, pinned by version and SHA-256, into its own directory.
 *    `--directfs=false` keeps the file model of the older build: the Sentry reaches files only
 *    through the Gofer, so it can run as its id range's `nobody` (with directfs, the default in
 *    this build, the Sentry opens host files itself and runs as the range's root).
 * `KILN_GVISOR_PLATFORM` picks: `ptrace` or `systrap` keeps only that build; unset (`auto`), Kiln's
 * own build comes first, for fidelity: the 2022 build refuses coreutils 9's statx flags (`stat` and
 * `ls -l` fail with EINVAL) and ignores a terminal's end-of-file character; the system's build on
 * ptrace is the fallback where Kiln's is not installed (speed: mixed, see docs/tiers/gvisor.md).
 * `KILN_RUNSC` names another binary to run on systrap instead of Kiln's own.
 */
import type { OciRuntimeCandidate } from "../common/oci-runtime-choice.ts";

/** Where scripts/install-runsc.sh puts Kiln's own runsc (keep the two in step). */
export const KILN_RUNSC = "/usr/local/lib/kiln/runsc-20240729.0/runsc";

/** The platforms `KILN_GVISOR_PLATFORM` may name. */
export const GVISOR_PLATFORMS = ["auto", "ptrace", "systrap"] as const;

/**
 * The builds, in the order they are tried, as the environment `env` picks them (an unknown
 * `KILN_GVISOR_PLATFORM` keeps none: doctor then names the variable).
 */
export function runscBuilds(env: NodeJS.ProcessEnv = process.env): OciRuntimeCandidate[] {
  const ptrace: OciRuntimeCandidate = {
    binary: "runsc",
    flags: ["--platform=ptrace"],
    label: "platform ptrace",
    stateName: "runsc",
  };
  const systrap: OciRuntimeCandidate = {
    binary: env.KILN_RUNSC || KILN_RUNSC,
    flags: ["--platform=systrap", "--directfs=false"],
    label: "platform systrap",
    stateName: "runsc-systrap",
  };
  const pick = env.KILN_GVISOR_PLATFORM || "auto";
  if (pick === "auto") return [systrap, ptrace];
  if (pick === "ptrace") return [ptrace];
  if (pick === "systrap") return [systrap];
  return [];
}
