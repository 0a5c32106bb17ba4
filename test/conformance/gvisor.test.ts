import { runConformance } from "./suite.ts";

runConformance({
  tier: "gvisor",
  runaway: "timeout",
  unnamedLimits: {
    limits: ["pids"],
    reason:
      "gVisor limits processes inside its own kernel (RLIMIT_NPROC): fork fails with EAGAIN as it should, " +
      "but the host pids cgroup never sees guest processes, so Kiln cannot tell which limit ended the command",
  },
});
