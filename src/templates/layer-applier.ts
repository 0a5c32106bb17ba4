/**
 * Applies container image layers (tar streams), in order, onto a root filesystem directory.
 * Whiteouts are honoured (`.wh.<name>` deletes `<name>`, `.wh..wh..opq` hides what lower layers put
 * in its directory). Modes, ownership (as root), mtimes, symlinks and hard links are kept; devices
 * and fifos are skipped. Paths resolve inside the root filesystem the way the sandbox will see them
 * and files are opened O_NOFOLLOW|O_EXCL, so nothing is ever written through a symlink on the host.
 */
import { constants } from "node:fs";
import { lchown, link, lstat, lutimes, mkdir, open, readdir, rm, symlink } from "node:fs/promises";
import { join } from "node:path";
import type { Readable } from "node:stream";
import type * as tarStream from "tar-stream";
import { InvalidArgumentError } from "../core/errors.ts";
import { copyInto, memberSegments, resolveDir, resolveInRoot } from "./fs-util.ts";

type Header = tarStream.Header;

interface DirAttrs {
  mode: number;
  uid: number;
  gid: number;
  mtimeMs: number;
}

const WHITEOUT = ".wh.";
const OPAQUE = ".wh..wh..opq";

/** Applies layer tars, in order, onto a root filesystem directory. */
export class LayerApplier {
  private readonly isRoot = process.getuid?.() === 0;
  /** Real (symlink-free) paths written by the layer being applied. */
  private written = new Set<string>();
  /** Attributes of directories, applied at the end (they stay writable while layers apply). */
  private readonly dirs = new Map<string, DirAttrs>();
  /** Entries skipped (devices, fifos, unknown types), for the caller to report. */
  readonly skipped: string[] = [];

  readonly rootfs: string;
  constructor(rootfs: string) {
    this.rootfs = rootfs;
  }

  /** Starts a new layer. */
  beginLayer(): void {
    this.written = new Set();
  }

  private mkParent = async (inner: string): Promise<void> => {
    await mkdir(join(this.rootfs, inner), { mode: 0o700 });
    this.written.add(inner);
    if (!this.dirs.has(inner)) this.dirs.set(inner, { mode: 0o755, uid: 0, gid: 0, mtimeMs: Date.now() });
  };

  /** Applies one entry of a layer tar. */
  async entry(h: Header, data: Readable): Promise<void> {
    const segs = memberSegments(h.name, "layer entry");
    if (segs.length === 0) return; // the root itself
    const base = segs[segs.length - 1]!;
    if (base.startsWith(WHITEOUT)) return this.whiteout(segs);
    const { parent, leaf, innerParent } = await resolveInRoot(this.rootfs, segs, { create: this.mkParent });
    const host = join(parent, leaf);
    const inner = [...innerParent, leaf].join("/");
    const mode = (h.mode ?? 0o644) & 0o7777;
    const uid = h.uid ?? 0;
    const gid = h.gid ?? 0;
    const mtimeMs = (h.mtime ?? new Date(0)).getTime();
    const existing = await lstat(host).catch(() => undefined);
    switch (h.type) {
      case "directory": {
        if (existing && !existing.isDirectory()) await rm(host, { force: true });
        if (!existing?.isDirectory()) await mkdir(host, { mode: 0o700 });
        this.dirs.set(inner, { mode, uid, gid, mtimeMs });
        break;
      }
      case "file":
      case "contiguous-file": {
        if (existing) await rm(host, { recursive: true, force: true });
        const fh = await open(
          host,
          constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
          0o600,
        );
        try {
          await copyInto(data, fh);
          if (this.isRoot) await fh.chown(uid, gid);
          await fh.chmod(mode);
          await fh.utimes(mtimeMs / 1000, mtimeMs / 1000);
        } finally {
          await fh.close();
        }
        break;
      }
      case "symlink": {
        if (existing) await rm(host, { recursive: true, force: true });
        const target = h.linkname ?? "";
        if (target.includes("\0")) throw new InvalidArgumentError(`symlink target has a NUL byte: ${h.name}`);
        // The target is stored as is: it is resolved inside the sandbox, never on the host.
        await symlink(target, host);
        if (this.isRoot) await lchown(host, uid, gid);
        await lutimes(host, mtimeMs / 1000, mtimeMs / 1000);
        break;
      }
      case "link": {
        const tsegs = memberSegments(h.linkname ?? "", "hard link target");
        if (tsegs.length === 0) throw new InvalidArgumentError(`hard link to the root: ${h.name}`);
        const t = await resolveInRoot(this.rootfs, tsegs).catch(() => undefined);
        const tst = t && (await lstat(join(t.parent, t.leaf)).catch(() => undefined));
        if (!t || !tst) throw new InvalidArgumentError(`hard link ${h.name} to a missing ${h.linkname}`);
        if (tst.isDirectory()) throw new InvalidArgumentError(`hard link ${h.name} to a directory`);
        const src = join(t.parent, t.leaf);
        if (src === host) break;
        if (existing) await rm(host, { recursive: true, force: true });
        // linkat(2) without AT_SYMLINK_FOLLOW: a link to a symlink links the symlink itself.
        await link(src, host);
        break;
      }
      default:
        // Devices, fifos and anything else: a template has no use for them (tiers provide /dev).
        this.skipped.push(`${h.type}: ${h.name}`);
        return;
    }
    this.written.add(inner);
  }

  private async whiteout(segs: string[]): Promise<void> {
    const base = segs[segs.length - 1]!;
    const dirSegs = segs.slice(0, -1);
    if (base === OPAQUE) {
      const real = await resolveDir(this.rootfs, dirSegs, this.mkParent);
      await this.hideLower(real.join("/"));
      return;
    }
    if (base.startsWith(`${WHITEOUT}${WHITEOUT}`)) return; // aufs metadata (.wh..wh.plnk and the like)
    const name = base.slice(WHITEOUT.length);
    if (name === "" || name === "." || name === "..")
      throw new InvalidArgumentError(`bad whiteout: ${segs.join("/")}`);
    let real: string[];
    try {
      real = await resolveDir(this.rootfs, dirSegs);
    } catch {
      return; // its directory does not exist: nothing to delete
    }
    await rm(join(this.rootfs, ...real, name), { recursive: true, force: true });
    this.dirs.delete([...real, name].join("/"));
  }

  /** Removes everything below `inner` that the current layer did not write. */
  private async hideLower(inner: string): Promise<void> {
    const host = inner === "" ? this.rootfs : join(this.rootfs, inner);
    for (const name of await readdir(host)) {
      const child = inner === "" ? name : `${inner}/${name}`;
      if (!this.written.has(child)) {
        await rm(join(host, name), { recursive: true, force: true });
        for (const k of this.dirs.keys()) if (k === child || k.startsWith(`${child}/`)) this.dirs.delete(k);
        continue;
      }
      const st = await lstat(join(host, name));
      if (st.isDirectory()) await this.hideLower(child);
    }
  }

  /** Applies directory modes, owners and mtimes, deepest first. Call once after the last layer. */
  async finish(): Promise<void> {
    const list = [...this.dirs.entries()].sort((a, b) => b[0].split("/").length - a[0].split("/").length);
    for (const [inner, a] of list) {
      let fh: Awaited<ReturnType<typeof open>>;
      try {
        fh = await open(
          join(this.rootfs, inner),
          constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW,
        );
      } catch {
        continue; // replaced by a non-directory since
      }
      try {
        if (this.isRoot) await fh.chown(a.uid, a.gid);
        await fh.chmod(a.mode);
        await fh.utimes(a.mtimeMs / 1000, a.mtimeMs / 1000);
      } finally {
        await fh.close();
      }
    }
  }
}
