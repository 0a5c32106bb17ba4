/** The /v1 API, called with the API key kept in sessionStorage. */

const KEY_STORAGE = "kiln.apiKey";

export type TierName = string;

export interface Limits {
  timeoutMs: number;
  memoryBytes: number;
  cpuCount: number;
  diskBytes: number;
  [k: string]: number;
}

export interface SandboxInfo {
  id: string;
  tier: TierName;
  template: string;
  state: "running" | "paused" | "stopped" | "killed";
  env: Record<string, string>;
  cwd: string;
  metadata: Record<string, string>;
  limits: Limits;
  /** Named volumes mounted in it. */
  volumes?: { id: string; name: string; path: string }[];
  createdAt: string;
  expiresAt: string | null;
}

/** A saved state of a sandbox's files. */
export interface SnapshotInfo {
  id: string;
  name: string | null;
  tier: TierName;
  sandboxId: string;
  kind: "files" | "memory";
  sizeBytes: number;
  createdAt: string;
}

export interface Stats {
  memoryBytes?: number;
  cpuMs?: number;
  diskBytes?: number;
}

export interface TierStatus {
  tier: TierName;
  available: boolean;
  reason: string;
}

export interface EntryInfo {
  name: string;
  path: string;
  type: "file" | "dir" | "symlink";
  size: number;
  mode: number;
  mtimeMs: number;
  symlinkTarget?: string;
}

export interface AuditEntry {
  id: number;
  command: string;
  exitCode: number | null;
  status: "success" | "error" | "pending";
  startedAtMs: number;
  durationMs: number | null;
  cwd: string;
}

/** A sandbox's egress policy (secrets and header rules without their values). */
export interface NetworkSettings {
  egress: "none" | "all";
  allow: string[];
  deny: string[];
  secrets?: Record<string, { hosts: string[]; headers?: string[]; placeholder: string }>;
  headers?: Record<string, string[]>;
}

/** One connection, request, DNS question or policy change in the network audit log. */
export interface NetworkEntry {
  id: number;
  atMs: number;
  kind: string;
  host?: string;
  address?: string;
  port?: number;
  method?: string;
  path?: string;
  status?: number;
  allowed: boolean;
  rule: string;
  bytesUp: number;
  bytesDown: number;
  durationMs: number;
}

export interface CreateSandbox {
  tier?: TierName;
  template?: string;
  timeoutMs?: number;
  limits?: Partial<Limits>;
}

/** An error answer of the API: `{ error: { code, message } }`. */
export class ApiError extends Error {
  readonly code: string;
  readonly status: number;
  constructor(code: string, message: string, status: number) {
    super(message);
    this.code = code;
    this.status = status;
  }
}

export function getKey(): string | null {
  return sessionStorage.getItem(KEY_STORAGE);
}
export function setKey(key: string): void {
  sessionStorage.setItem(KEY_STORAGE, key);
}
export function clearKey(): void {
  sessionStorage.removeItem(KEY_STORAGE);
}

/** Called when the key is refused (the app logs out). */
let onUnauthenticated: () => void = () => {};
export function setUnauthenticatedHandler(f: () => void): void {
  onUnauthenticated = f;
}

export function authHeaders(key = getKey()): Record<string, string> {
  return key ? { authorization: `Bearer ${key}` } : {};
}

/** A raw request; throws ApiError for an error answer. */
export async function request(
  method: string,
  path: string,
  init: { json?: unknown; body?: BodyInit; key?: string; signal?: AbortSignal } = {},
): Promise<Response> {
  const headers: Record<string, string> = authHeaders(init.key ?? getKey());
  let body: BodyInit | undefined = init.body;
  if (init.json !== undefined) {
    headers["content-type"] = "application/json";
    body = JSON.stringify(init.json);
  } else if (body !== undefined) headers["content-type"] = "application/octet-stream";
  const res = await fetch(path, {
    method,
    headers,
    ...(body !== undefined ? { body } : {}),
    ...(init.signal ? { signal: init.signal } : {}),
  });
  if (!res.ok) {
    let code = "internal";
    let message = `HTTP ${res.status}`;
    try {
      const j = (await res.json()) as { error?: { code?: string; message?: string } };
      code = j.error?.code ?? code;
      message = j.error?.message ?? message;
    } catch {
      // not JSON
    }
    if (res.status === 401 && init.key === undefined) onUnauthenticated();
    throw new ApiError(code, message, res.status);
  }
  return res;
}

/** A JSON request. */
export async function api<T>(
  method: string,
  path: string,
  init: { json?: unknown; key?: string } = {},
): Promise<T> {
  const res = await request(method, path, init);
  if (res.status === 204) return undefined as T;
  return (await res.json()) as T;
}

const enc = encodeURIComponent;
export const sandboxPath = (id: string) => `/v1/sandboxes/${enc(id)}`;

export const listSandboxes = () => api<SandboxInfo[]>("GET", "/v1/sandboxes");
export const getSandbox = (id: string) => api<SandboxInfo>("GET", sandboxPath(id));
export const createSandbox = (body: CreateSandbox) =>
  api<SandboxInfo>("POST", "/v1/sandboxes", { json: body });
export const killSandbox = (id: string) => api<void>("DELETE", sandboxPath(id));
export const pauseSandbox = (id: string) => api<SandboxInfo>("POST", `${sandboxPath(id)}/pause`);
export const resumeSandbox = (id: string) => api<SandboxInfo>("POST", `${sandboxPath(id)}/resume`);
export const snapshotSandbox = (id: string) =>
  api<SnapshotInfo>("POST", `${sandboxPath(id)}/snapshots`, { json: {} });
export const forkSandbox = (id: string, count = 1) =>
  api<SandboxInfo[]>("POST", `${sandboxPath(id)}/fork`, { json: { count } });
export const getStats = (id: string) => api<Stats>("GET", `${sandboxPath(id)}/stats`);
export const getLogs = (id: string) => api<AuditEntry[]>("GET", `${sandboxPath(id)}/logs?limit=500`);
export const getNetwork = (id: string) => api<NetworkSettings>("GET", `${sandboxPath(id)}/network`);
export const getNetworkLogs = (id: string) =>
  api<NetworkEntry[]>("GET", `${sandboxPath(id)}/network-logs?limit=500`);
export const doctor = () => api<TierStatus[]>("GET", "/v1/doctor");
export const listFiles = (id: string, path: string) =>
  api<EntryInfo[]>("GET", `${sandboxPath(id)}/files/list?path=${enc(path)}`);
export const makeDir = (id: string, path: string) =>
  api<{ created: boolean }>("POST", `${sandboxPath(id)}/files/mkdir`, { json: { path } });
export const removeFile = (id: string, path: string) =>
  api<void>("DELETE", `${sandboxPath(id)}/files?path=${enc(path)}`);
export const uploadFile = (id: string, path: string, data: Blob) =>
  request("PUT", `${sandboxPath(id)}/files?path=${enc(path)}`, { body: data }).then(
    (r) => r.json() as Promise<EntryInfo>,
  );
export const downloadFile = (id: string, path: string) =>
  request("GET", `${sandboxPath(id)}/files?path=${enc(path)}`).then((r) => r.blob());

/** Checks a key (without logging out on failure). */
export const checkKey = (key: string) => api<SandboxInfo[]>("GET", "/v1/sandboxes", { key });
