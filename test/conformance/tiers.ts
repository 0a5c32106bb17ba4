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
    // Debian 12's runsc (ptrace); Debian 13's (KILN_GVISOR_PLATFORM=systrap) handles VEOF.
    skip:
      process.env.KILN_GVISOR_PLATFORM === "systrap"
        ? []
        : [
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
  },
  microvm: {
    tier: "microvm",
    runaway: "timeout",
    bombTimeoutMs: 90_000,
  },
} satisfies Record<string, ConformanceOptions>;
