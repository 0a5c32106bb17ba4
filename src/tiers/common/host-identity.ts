/**
 * A sandbox's name as a host: its hostname is its id (`sb-<20 characters>`:
 * a hostname may not hold `_`), so that every sandbox, and every fork of one,
 * is a host of its own; its /etc/hostname and /etc/hosts (bound over the
 * template's, which is read-only and shared) name it, so that the name
 * resolves to the sandbox itself without DNS.
 */
import { lstatSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { InstanceSpec } from "../../core/backend.ts";

/** The hostname of sandbox `id`. */
export function sandboxHostname(id: string): string {
  return id.replace(/_/g, "-");
}

/** Host paths of a sandbox's own /etc/hostname and /etc/hosts. */
export interface SandboxHostFiles {
  hostname: string;
  hosts: string;
}

function isFile(path: string): boolean {
  try {
    return lstatSync(path).isFile();
  } catch {
    return false;
  }
}

/**
 * Writes the sandbox's /etc/hostname and /etc/hosts into its state directory,
 * or returns undefined when the template has no regular files there to bind
 * them over (then only the kernel's hostname is the sandbox's).
 */
export function sandboxHostFiles(spec: InstanceSpec, rootfs: string): SandboxHostFiles | undefined {
  if (!isFile(join(rootfs, "etc", "hosts")) || !isFile(join(rootfs, "etc", "hostname"))) return undefined;
  const name = sandboxHostname(spec.id);
  const hostname = join(spec.stateDir, "hostname");
  const hosts = join(spec.stateDir, "hosts");
  writeFileSync(hostname, `${name}\n`);
  writeFileSync(
    hosts,
    `127.0.0.1\tlocalhost\n127.0.1.1\t${name}\n::1\tlocalhost ip6-localhost ip6-loopback\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n`,
  );
  return { hostname, hosts };
}

/** `{ hostFiles }` when there are any (for inputs whose field is optional). */
export function withHostFiles(files: SandboxHostFiles | undefined): { hostFiles?: SandboxHostFiles } {
  return files ? { hostFiles: files } : {};
}
