/**
 * Kiln's library entry: `import { Kiln } from "kiln"`.
 * Importing this module registers every tier (see src/tiers/index.ts).
 */
import "./tiers/index.ts";

export type { AdmissionOptions, Budget } from "./core/admission.ts";
export type {
  Backend,
  Capabilities,
  FileOps,
  Instance,
  InstanceSpec,
  WatchEvent,
  Watching,
} from "./core/backend.ts";
export {
  CellTimeoutError,
  type CodeContext,
  CodeContexts,
  defaultContextId,
  MAX_CODE_CONTEXTS,
} from "./core/code-contexts.ts";
export type { CommandHandle, ProcessInfo, RunOptions, WaitOptions } from "./core/commands.ts";
export * from "./core/errors.ts";
export {
  type CellCallbacks,
  type CellError,
  type CellResult,
  type CodeLanguage,
  checkLanguage,
  type Execution,
  executionText,
} from "./core/execution.ts";
export type { WriteData, WriteOptions } from "./core/files.ts";
export { checkSandboxId } from "./core/ids.ts";
export { defaultDataDir, Kiln, type ListOptions, type OpenOptions } from "./core/kiln.ts";
export {
  DEFAULT_LIMITS,
  LIMIT_PROFILES,
  type Limits,
  MAX_COMMAND_TIMEOUT_MS,
  MAX_SANDBOX_TIMEOUT_MS,
  resolveLimits,
} from "./core/limits.ts";
export { WORKSPACE } from "./core/paths.ts";
export {
  type ConnectOptions as PortConnectOptions,
  checkPort,
  checkPortPolicy,
  checkSandboxDomain,
  DEFAULT_PORT_POLICY,
  type ForwardOptions,
  type PortForward,
  type PortPolicy,
  type Ports,
  parseSandboxHost,
  portAccess,
  sandboxHostName,
} from "./core/ports.ts";
export type { RunCodeOptions, Sandbox, SandboxNetwork } from "./core/sandbox.ts";
export { cwdFromState, newStateFile, wrapShellLine } from "./core/shell-state.ts";
export { checkEnvSize, checkMetadataSize, SIZE_LIMITS } from "./core/sizes.ts";
export { StatementCache } from "./core/sqlite.ts";
export { checkTierName } from "./core/tier-registry.ts";
export * from "./core/types.ts";
export {
  type EntryMetadata,
  type VolumeEntry,
  VolumeFiles,
  volumePathParts,
} from "./core/volume-files.ts";
export {
  checkMountPath,
  checkVolumeId,
  checkVolumeName,
  MAX_VOLUME_MOUNTS,
  VOLUME_ROOT,
  type VolumeInfo,
  type VolumeMount,
  type VolumeMountOptions,
} from "./core/volumes.ts";
export {
  hasEgress,
  MAX_NETWORK_RULES,
  type NetworkLimits,
  type NetworkOptions,
  type NetworkSettings,
  resolveNetwork,
  type ServerNetworkLimits,
} from "./network/policy.ts";
