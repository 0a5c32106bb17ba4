/**
 * Imports a container image as a template: a `docker save` tarball
 * (manifest.json + layer tars) or an OCI image layout tarball (oci-layout,
 * index.json, blobs/sha256/...), either optionally gzip-compressed as a
 * whole; layers may be plain, gzip or zstd tars.
 *
 * Layers are applied in order with whiteouts honoured (`.wh.<name>` deletes
 * `<name>`, `.wh..wh..opq` hides everything lower layers put in its
 * directory). Modes, ownership (when running as root), mtimes, symlinks and
 * hard links are kept; devices and fifos are skipped.
 *
 * Safety: an entry name with a `..` segment or an absolute name is rejected
 * (InvalidArgumentError). Symlinks are never followed on the host: a path
 * that goes through a symlink inside the image is resolved the way the
 * sandbox will see it, inside the root filesystem (an absolute target
 * restarts at the root), so `evil -> /tmp` then `evil/file` writes the
 * rootfs's own `/tmp/file`. Files are opened O_NOFOLLOW|O_EXCL, so a leaf
 * symlink is replaced, never written through.
 *
 * The template is content-addressed by the sha256 of the image's config (the
 * image id), so importing the same image twice is instant.
 */
import { createHash } from "node:crypto";
import { constants, createReadStream } from "node:fs";
import { lstat, mkdir, open, readFile, stat } from "node:fs/promises";
import { join, posix } from "node:path";
import { type Readable, Transform, type Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import * as zlib from "node:zlib";
import * as tarStream from "tar-stream";
import {
  AbortedError,
  InvalidArgumentError,
  isKilnError,
  NotFoundError,
  throwIfAborted,
  UnsupportedError,
} from "../core/errors.ts";
import { debianArch } from "./debootstrap.ts";
import { copyInto, memberSegments, removeTree } from "./fs-util.ts";
import { LayerApplier } from "./layer-applier.ts";
import { checkTemplateName, type ImageConfig, type Template, type TemplateStore } from "./template-store.ts";

/** Import progress: a rough fraction in [0, 1] and what is happening. */
export interface ImportProgress {
  fraction: number;
  message: string;
}

/** Options of {@link importImage}. */
export interface ImportOptions {
  /** Repoint an existing name at a different image. */
  replace?: boolean;
  signal?: AbortSignal;
  onProgress?: (p: ImportProgress) => void;
}

type Header = tarStream.Header;

const MAX_JSON = 16 << 20;

/** Compression of a stream, by its magic bytes. */
async function sniff(path: string): Promise<"gzip" | "zstd" | "none"> {
  const fh = await open(path, "r");
  try {
    const buf = Buffer.alloc(4);
    const { bytesRead } = await fh.read(buf, 0, 4, 0);
    if (bytesRead >= 2 && buf[0] === 0x1f && buf[1] === 0x8b) return "gzip";
    if (bytesRead === 4 && buf.readUInt32LE(0) === 0xfd2fb528) return "zstd";
    return "none";
  } finally {
    await fh.close();
  }
}

function decoder(kind: "gzip" | "zstd" | "none"): Transform[] {
  if (kind === "gzip") return [zlib.createGunzip()];
  if (kind === "zstd") {
    const z = (zlib as unknown as { createZstdDecompress?: () => Transform }).createZstdDecompress;
    if (!z) throw new UnsupportedError("zstd-compressed layers need a Node with zlib zstd support");
    return [z()];
  }
  return [];
}

/** Counts (and optionally hashes) the bytes that pass. */
class Meter extends Transform {
  bytes = 0;
  readonly hash = createHash("sha256");
  private readonly onBytes: (n: number) => void;
  constructor(onBytes: (n: number) => void) {
    super();
    this.onBytes = onBytes;
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null, d?: Buffer) => void): void {
    this.bytes += chunk.length;
    this.hash.update(chunk);
    this.onBytes(this.bytes);
    cb(null, chunk);
  }
}

/**
 * Streams the tar in `path` (decompressing as sniffed) and calls `fn` for each
 * entry in order. `fn` must consume or ignore the entry's data; the rest is drained.
 */
async function forEachEntry(
  path: string,
  meter: Meter,
  fn: (h: Header, data: Readable) => Promise<void>,
  signal: AbortSignal | undefined,
): Promise<void> {
  const source = createReadStream(path);
  const extract = tarStream.extract();
  const stages = [source, meter, ...decoder(await sniff(path)), extract as unknown as Writable];
  const feed = pipeline(stages as unknown as [Readable, Writable]);
  feed.catch(() => {});
  try {
    for await (const entry of extract) {
      throwIfAborted(signal);
      await fn(entry.header, entry as unknown as Readable);
      entry.resume();
    }
    await feed;
  } catch (e) {
    source.destroy();
    extract.destroy();
    await feed.catch(() => {});
    if (isKilnError(e)) throw e;
    if (signal?.aborted) throw new AbortedError(undefined, { cause: signal.reason });
    throw new InvalidArgumentError(`cannot read ${posix.basename(path)}: ${(e as Error).message}`, {
      cause: e,
    });
  }
}

// --- the outer tarball ---------------------------------------------------------

/** The outer tarball unpacked to disk: its regular files, plus its links resolved by name. */
class ImageArchive {
  readonly links = new Map<string, string>();
  readonly dir: string;
  constructor(dir: string) {
    this.dir = dir;
  }

  /** Host path of a member, following the archive's own symlinks and hard links by name. */
  async path(member: string): Promise<string> {
    let name = memberSegments(member, "image member").join("/");
    for (let hops = 0; hops < 16; hops++) {
      const next = this.links.get(name);
      if (next === undefined) break;
      name = next;
    }
    const p = join(this.dir, ...name.split("/"));
    const st = await stat(p).catch(() => undefined);
    if (!st?.isFile()) throw new InvalidArgumentError(`not a valid image tarball: ${member} is missing`);
    return p;
  }

  async has(member: string): Promise<boolean> {
    return this.path(member).then(
      () => true,
      () => false,
    );
  }

  async json<T>(member: string): Promise<{ value: T; bytes: Buffer }> {
    const p = await this.path(member);
    if ((await stat(p)).size > MAX_JSON) throw new InvalidArgumentError(`${member} is too large`);
    const bytes = await readFile(p);
    try {
      return { value: JSON.parse(bytes.toString("utf8")) as T, bytes };
    } catch (e) {
      throw new InvalidArgumentError(`not a valid image tarball: ${member} is not JSON`, { cause: e });
    }
  }
}

async function unpackArchive(
  tarPath: string,
  dir: string,
  signal: AbortSignal | undefined,
  onBytes: (n: number) => void,
): Promise<ImageArchive> {
  const archive = new ImageArchive(dir);
  await forEachEntry(
    tarPath,
    new Meter(onBytes),
    async (h, data) => {
      const segs = memberSegments(h.name.replace(/^\/+/, ""), "image member");
      if (segs.length === 0) return;
      const name = segs.join("/");
      const host = join(dir, ...segs);
      if (h.type === "directory") await mkdir(host, { recursive: true });
      else if (h.type === "file" || h.type === "contiguous-file") {
        await mkdir(join(dir, ...segs.slice(0, -1)), { recursive: true });
        const fh = await open(
          host,
          constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW,
          0o600,
        );
        try {
          await copyInto(data, fh);
        } finally {
          await fh.close();
        }
      } else if (h.type === "symlink" || h.type === "link") {
        // Old `docker save` links duplicate layers: <id>/layer.tar -> ../<other>/layer.tar.
        const target = h.linkname ?? "";
        const resolved =
          h.type === "link"
            ? posix.normalize(target.replace(/^\/+/, ""))
            : posix.normalize(posix.join(posix.dirname(name), target));
        if (resolved.startsWith("..") || resolved.startsWith("/"))
          throw new InvalidArgumentError(`image member ${name} links outside the tarball`);
        archive.links.set(name, resolved);
      }
    },
    signal,
  );
  return archive;
}

// --- reading the image ---------------------------------------------------------

interface Descriptor {
  mediaType?: string;
  digest: string;
  size?: number;
  platform?: { os?: string; architecture?: string; variant?: string };
}

interface ResolvedImage {
  configBytes: Buffer;
  /** Archive member of each layer, bottom first, with the digest to check it against (OCI). */
  layers: { member: string; digest?: string }[];
  repoTags?: string[];
}

function blobMember(digest: string): string {
  const m = /^(sha256|sha512):([0-9a-f]+)$/.exec(digest);
  if (!m) throw new InvalidArgumentError(`invalid digest in image: ${JSON.stringify(digest)}`);
  return `blobs/${m[1]}/${m[2]}`;
}

const INDEX_TYPES = new Set([
  "application/vnd.oci.image.index.v1+json",
  "application/vnd.docker.distribution.manifest.list.v2+json",
]);

function goArch(): string {
  const a = debianArch();
  return a === "armhf" ? "arm" : a === "ppc64el" ? "ppc64le" : a;
}

async function readImage(archive: ImageArchive): Promise<ResolvedImage> {
  if (await archive.has("manifest.json")) {
    const { value } =
      await archive.json<{ Config?: string; Layers?: string[]; RepoTags?: string[] }[]>("manifest.json");
    const m = Array.isArray(value) ? value[0] : undefined;
    if (!m || typeof m.Config !== "string" || !Array.isArray(m.Layers))
      throw new InvalidArgumentError("not a valid docker-save tarball: manifest.json has no image");
    const configBytes = await readFile(await archive.path(m.Config));
    return {
      configBytes,
      layers: m.Layers.map((l) => {
        const d = /^blobs\/sha256\/([0-9a-f]{64})$/.exec(l);
        return d ? { member: l, digest: `sha256:${d[1]}` } : { member: l };
      }),
      ...(Array.isArray(m.RepoTags) ? { repoTags: m.RepoTags.map(String) } : {}),
    };
  }
  if (!(await archive.has("index.json")))
    throw new InvalidArgumentError(
      "not an image tarball: no manifest.json (docker save) or index.json (OCI layout)",
    );
  let { value: index } = await archive.json<{ manifests?: Descriptor[]; mediaType?: string }>("index.json");
  for (let depth = 0; depth < 4; depth++) {
    const list = index.manifests ?? [];
    if (list.length === 0) throw new InvalidArgumentError("OCI layout: index.json lists no manifests");
    const pick =
      list.length === 1
        ? list[0]!
        : (list.find((d) => d.platform?.os === "linux" && d.platform.architecture === goArch()) ??
          list.find((d) => !d.platform || d.platform.os === "linux"));
    if (!pick) throw new InvalidArgumentError(`OCI layout: no manifest for linux/${goArch()}`);
    const { value, bytes } = await archive.json<{
      mediaType?: string;
      manifests?: Descriptor[];
      config?: Descriptor;
      layers?: Descriptor[];
    }>(blobMember(pick.digest));
    checkDigest(pick.digest, bytes, "manifest");
    if (INDEX_TYPES.has(pick.mediaType ?? "") || INDEX_TYPES.has(value.mediaType ?? "") || value.manifests) {
      index = value;
      continue;
    }
    if (!value.config || !Array.isArray(value.layers))
      throw new InvalidArgumentError("OCI layout: the manifest has no config or layers");
    const configBytes = await readFile(await archive.path(blobMember(value.config.digest)));
    checkDigest(value.config.digest, configBytes, "config");
    return {
      configBytes,
      layers: value.layers.map((l) => ({ member: blobMember(l.digest), digest: l.digest })),
    };
  }
  throw new InvalidArgumentError("OCI layout: image indexes nested too deep");
}

function checkDigest(digest: string, bytes: Buffer, what: string): void {
  const [alg, hex] = digest.split(":");
  if (alg !== "sha256" && alg !== "sha512") return;
  if (createHash(alg).update(bytes).digest("hex") !== hex)
    throw new InvalidArgumentError(`image ${what} does not match its digest ${digest}`);
}

function parseConfig(bytes: Buffer, repoTags?: string[]): ImageConfig {
  let c: {
    architecture?: string;
    os?: string;
    config?: { Env?: string[]; Cmd?: string[]; Entrypoint?: string[]; WorkingDir?: string; User?: string };
  };
  try {
    c = JSON.parse(bytes.toString("utf8"));
  } catch (e) {
    throw new InvalidArgumentError("image config is not JSON", { cause: e });
  }
  const strs = (v: unknown) => (Array.isArray(v) ? v.map(String) : []);
  const cfg = c.config ?? {};
  return {
    env: strs(cfg.Env),
    cmd: strs(cfg.Cmd),
    entrypoint: strs(cfg.Entrypoint),
    workingDir: typeof cfg.WorkingDir === "string" ? cfg.WorkingDir : "",
    user: typeof cfg.User === "string" ? cfg.User : "",
    ...(c.architecture ? { architecture: String(c.architecture) } : {}),
    ...(c.os ? { os: String(c.os) } : {}),
    ...(repoTags?.length ? { repoTags } : {}),
  };
}

/** Makes sure the mount points every tier uses exist: /workspace, /tmp, /.kiln (the agent's), never through a symlink. */
async function ensureMountPoints(rootfs: string): Promise<void> {
  for (const [dir, mode] of [
    ["workspace", 0o755],
    [".kiln", 0o755],
    ["tmp", 0o1777],
  ] as const) {
    const st = await lstat(join(rootfs, dir)).catch(() => undefined);
    if (st) continue;
    await mkdir(join(rootfs, dir));
    const fh = await open(
      join(rootfs, dir),
      constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW,
    );
    try {
      await fh.chmod(mode);
    } finally {
      await fh.close();
    }
  }
}

/**
 * Imports an image tarball as the template `name`.
 * @throws NotFoundError (no such file), InvalidArgumentError (not an image, a hostile or corrupt
 *   layer, a digest mismatch), UnsupportedError, ConflictError (name taken by other content), AbortedError
 */
export async function importImage(
  store: TemplateStore,
  name: string,
  tarPath: string,
  options: ImportOptions = {},
): Promise<Template> {
  checkTemplateName(name);
  const { signal, onProgress } = options;
  throwIfAborted(signal);
  const st = await stat(tarPath).catch(() => undefined);
  if (!st) throw new NotFoundError(`no such file: ${tarPath}`);
  if (!st.isFile()) throw new InvalidArgumentError(`not a file: ${tarPath}`);
  const staging = await store.stagingDir("import");
  try {
    const imageDir = join(staging, "image");
    const rootfs = join(staging, "rootfs");
    await mkdir(imageDir);
    await mkdir(rootfs, { mode: 0o755 });
    let last = -1;
    const report = (fraction: number, message: string) => {
      const f = Math.round(fraction * 100) / 100;
      if (f === last) return;
      last = f;
      onProgress?.({ fraction: f, message });
    };
    report(0, "reading the image tarball");
    const archive = await unpackArchive(tarPath, imageDir, signal, (n) =>
      report((0.25 * n) / Math.max(st.size, 1), "reading the image tarball"),
    );
    const image = await readImage(archive);
    const digest = `sha256:${createHash("sha256").update(image.configBytes).digest("hex")}`;
    const config = parseConfig(image.configBytes, image.repoTags);
    const tagOpts = { replace: options.replace ?? false };
    if (await store.blob(digest)) {
      report(1, "already imported");
      return await store.tag(name, digest, tagOpts);
    }
    await store.checkTaggable(name, digest, tagOpts);
    const layerPaths = await Promise.all(image.layers.map((l) => archive.path(l.member)));
    const sizes = await Promise.all(layerPaths.map(async (p) => (await stat(p)).size));
    const total = Math.max(
      sizes.reduce((a, b) => a + b, 0),
      1,
    );
    let done = 0;
    const applier = new LayerApplier(rootfs);
    for (const [i, l] of image.layers.entries()) {
      applier.beginLayer();
      const msg = `applying layer ${i + 1}/${image.layers.length}`;
      const meter = new Meter((n) => report(0.25 + (0.7 * (done + n)) / total, msg));
      await forEachEntry(layerPaths[i]!, meter, (h, data) => applier.entry(h, data), signal);
      if (l.digest) verifyMeter(l.digest, meter);
      done += sizes[i]!;
    }
    await applier.finish();
    await ensureMountPoints(rootfs);
    await removeTree(imageDir);
    report(0.97, "storing the template");
    const t = await store.commit(
      name,
      staging,
      { digest, source: "oci-import", packages: [], image: config },
      tagOpts,
    );
    report(1, "done");
    return t;
  } finally {
    await removeTree(staging);
  }
}

function verifyMeter(digest: string, meter: Meter): void {
  const [alg, hex] = digest.split(":");
  if (alg === "sha256" && meter.hash.digest("hex") !== hex)
    throw new InvalidArgumentError(`image layer does not match its digest ${digest}`);
}
