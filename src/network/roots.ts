/** The certificates upstream servers are verified against, on every egress path. */
import { readFileSync } from "node:fs";
import { rootCertificates } from "node:tls";

let extraCa: string[] | undefined;

/** The roots upstream certificates are checked against: the system's, and `KILN_NETWORK_EXTRA_CA`. */
export function trustedRoots(): string[] {
  if (!extraCa) {
    const file = process.env.KILN_NETWORK_EXTRA_CA;
    extraCa = file ? [readFileSync(file, "utf8")] : [];
  }
  return [...rootCertificates, ...extraCa];
}
