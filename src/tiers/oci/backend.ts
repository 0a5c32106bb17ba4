/**
 * The `oci` tier: an OCI container run by runc. The same isolation primitives
 * as the namespace tier (namespaces, seccomp, cgroups, no capabilities), set
 * up by the reference container runtime from a runtime bundle; the agent is
 * the container's process and serves commands and files over runc's stdio.
 */
import { OciTierBackend } from "../common/oci-tier.ts";

/** The oci tier's driver: the shared OCI-runtime driver with runc. */
export class OciBackend extends OciTierBackend {
  constructor() {
    super({
      tier: "oci",
      binary: "runc",
      displayName: "runc",
      flags: [],
      trialTimeoutMs: 15_000,
      egress: "after-start",
      idmap: "join",
    });
  }
}
