/** The token service of `kiln serve`: tokens derived from the data directory's API keys. */
import type { Kiln } from "../index.ts";
import { loadTokenSecret, recordOrUndefined, SandboxTokens } from "../tokens/index.ts";
import type { KeyStore } from "./keys.ts";

/** Tokens whose owner is a key of `keys` (checked in kiln.db on every request) on `kiln`'s sandboxes. */
export function serverTokens(kiln: Kiln, keys: KeyStore): SandboxTokens {
  return new SandboxTokens({
    secret: loadTokenSecret(kiln.dataDir),
    record: (id) => recordOrUndefined(kiln, id),
    ownerActive: (owner) => {
      const key = keys.get(owner);
      return key !== undefined && key.revokedAt === null;
    },
    volume: (id) => kiln.volumeRecord(id),
  });
}
