import { runConformance } from "./suite.ts";

runConformance({
  tier: "gvisor",
  runaway: "timeout",
  skip: [
    {
      tests: ["a terminal: closing its input is an end of file typed at it"],
      reason:
        "the pty line discipline of Debian's gVisor (2022) ignores the end-of-file character (VEOF): " +
        "a program reading a gVisor terminal gets no end of file from closeStdin; kill it instead",
    },
  ],
  unnamedLimits: {
    limits: ["pids"],
    reason:
      "gVisor limits processes inside its own kernel (RLIMIT_NPROC): fork fails with EAGAIN as it should, " +
      "but the host pids cgroup never sees guest processes, so Kiln cannot tell which limit ended the command",
  },
});
