/**
 * Each tier's conformance options, in one place: the direct run (`<tier>.test.ts`) and the re-run
 * through the client SDK (`client.test.ts`) read the same entry, so the two cannot drift.
 */
import type { ConformanceOptions } from "./suite.ts";

export const TIERS = {
  virtual: { tier: "virtual", runaway: "limit" },
  namespace: { tier: "namespace", runaway: "timeout" },
  oci: { tier: "oci", runaway: "timeout" },
  gvisor: {
    tier: "gvisor",
    runaway: "timeout",
    // Limits of Debian 12's runsc (20221219), where it is the build in use.
    skip: [
      {
        tests: ["a terminal: closing its input is an end of file typed at it"],
        when: /runsc version 0\.0~20221219/,
        reason:
          "the pty line discipline of Debian's gVisor (2022) ignores the end-of-file character (VEOF): " +
          "a program reading a gVisor terminal gets no end of file from closeStdin; kill it instead",
      },
      {
        tests: ["stat and ls -l read a file's metadata"],
        when: /runsc version 0\.0~20221219/,
        reason:
          "Debian's gVisor (2022) refuses coreutils 9's statx flags (AT_NO_AUTOMOUNT) with EINVAL: `stat` and `ls -l` fail " +
          "(Kiln's own runsc build, installed by the setup, serves them)",
      },
    ],
    unnamedLimits: {
      limits: ["pids"],
      reason:
        "gVisor limits processes inside its own kernel (RLIMIT_NPROC): fork fails with EAGAIN as it should, " +
        "but the host pids cgroup never sees guest processes, so Kiln cannot tell which limit ended the command",
    },
  },
  microvm: {
    tier: "microvm",
    runaway: "timeout",
    bombTimeoutMs: 90_000,
  },
} satisfies Record<string, ConformanceOptions>;
