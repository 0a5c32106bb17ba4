/**
 * What a sandbox's policy keeps on the host, apart from its record: secret
 * values, header rule values and the upstream proxy's password, each in its
 * own 0600 file of the sandbox's state directory. A fork takes its parent's
 * as they are at the fork, so that its egress works as its parent's did.
 */
import { readHeaderRuleValues, readSecretValues, writeHeaderRules, writeSecretValues } from "./secrets.ts";
import { readProxyPassword, writeProxyPassword } from "./upstream-proxy.ts";

/** The values a policy keeps on the host. */
export interface KeptNetworkValues {
  /** Secret name -> value. */
  secrets: Record<string, string>;
  /** Host -> header -> value. */
  headers: Record<string, Record<string, string>>;
  /** The upstream proxy's password, if it has one. */
  proxyPassword: string | undefined;
}

/** The values kept in `stateDir` (none where there are none). */
export function readKeptNetworkValues(stateDir: string): KeptNetworkValues {
  return {
    secrets: readSecretValues(stateDir),
    headers: readHeaderRuleValues(stateDir),
    proxyPassword: readProxyPassword(stateDir),
  };
}

/** Keeps `values` in `stateDir`, replacing what was there (an empty part removes its file). */
export function writeKeptNetworkValues(stateDir: string, values: KeptNetworkValues): void {
  writeSecretValues(stateDir, values.secrets);
  writeHeaderRules(stateDir, values.headers);
  writeProxyPassword(stateDir, values.proxyPassword);
}
