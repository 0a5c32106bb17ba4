import { runConformance } from "./suite.ts";

runConformance({
  tier: "gvisor",
  runaway: "timeout",
  skip: [
    {
      reason:
        "gVisor limits processes inside its own kernel (RLIMIT_NPROC): fork fails with EAGAIN as it should, " +
        "but the host pids cgroup never sees guest processes, so Kiln cannot name the `pids` limit (docs/tiers/gvisor.md)",
      tests: ["containment: a fork bomb hits the pids limit; others keep working"],
    },
    {
      reason:
        "gVisor's memory limit is the host cgroup of the whole sandbox (Sentry included): reaching it OOM-kills " +
        "the Sentry, which ends the sandbox instead of one process (docs/tiers/gvisor.md)",
      tests: ["containment: a memory bomb hits the memory limit; others keep working"],
    },
    {
      reason:
        "tearing a gVisor sandbox down takes 1.3-1.8 s here (`runsc delete --force` after the Sentry was killed), " +
        "longer than this test's 300 ms margin between expiry and the check",
      tests: ["a sandbox expires after its timeout"],
    },
  ],
});
