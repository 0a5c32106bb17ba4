/**
 * Test helpers: builds image tarballs (docker save and OCI layout) in memory
 * with tar-stream, so the import tests need no registry and no docker.
 */
import { createHash } from "node:crypto";
import { writeFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import * as tarStream from "tar-stream";

/** One member of a test tar. */
export interface Member {
  name: string;
  type?: "file" | "directory" | "symlink" | "link" | "character-device" | "fifo";
  mode?: number;
  content?: string | Buffer;
  linkname?: string;
  uid?: number;
  gid?: number;
}

/** A tar holding `members`, in order. */
export async function makeTar(members: Member[]): Promise<Buffer> {
  const pack = tarStream.pack();
  const chunks: Buffer[] = [];
  const done = (async () => {
    for await (const c of pack) chunks.push(c as Buffer);
  })();
  for (const m of members) {
    const type = m.type ?? "file";
    const body = type === "file" ? Buffer.from(m.content ?? "") : undefined;
    const header: Parameters<tarStream.Pack["entry"]>[0] = {
      name: m.name,
      type,
      mode: m.mode ?? (type === "directory" ? 0o755 : 0o644),
      mtime: new Date(1_700_000_000_000),
      uid: m.uid ?? 0,
      gid: m.gid ?? 0,
      ...(m.linkname !== undefined ? { linkname: m.linkname } : {}),
      ...(type === "character-device" ? { devmajor: 1, devminor: 3 } : {}),
    };
    await new Promise<void>((res, rej) => pack.entry(header, body ?? "", (e) => (e ? rej(e) : res())));
  }
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

const sha = (b: Buffer | string) => createHash("sha256").update(b).digest("hex");

/** A minimal image config. */
export function imageConfig(layerTars: Buffer[]): Buffer {
  return Buffer.from(
    JSON.stringify({
      architecture: "amd64",
      os: "linux",
      config: {
        Env: ["PATH=/usr/local/bin:/usr/bin:/bin", "GREETING=hi"],
        Cmd: ["/bin/hello"],
        WorkingDir: "/app",
        User: "1000:1000",
      },
      rootfs: { type: "layers", diff_ids: layerTars.map((t) => `sha256:${sha(t)}`) },
    }),
  );
}

/** A `docker save` tarball (legacy layout: <id>/layer.tar, <config-hex>.json, manifest.json). */
export async function dockerSaveTar(
  layers: Member[][],
  opts: { gzipLayers?: boolean } = {},
): Promise<Buffer> {
  const tars = await Promise.all(layers.map(makeTar));
  const config = imageConfig(tars);
  const configName = `${sha(config)}.json`;
  const layerFiles = tars.map((t, i) => ({
    name: `${sha(`${i}${sha(t)}`)}/layer.tar`,
    data: opts.gzipLayers ? gzipSync(t) : t,
  }));
  const manifest = [
    { Config: configName, RepoTags: ["kiln-test:latest"], Layers: layerFiles.map((l) => l.name) },
  ];
  return makeTar([
    ...layerFiles.flatMap((l) => [
      { name: `${l.name.split("/")[0]}/`, type: "directory" as const },
      { name: l.name, content: l.data },
    ]),
    { name: configName, content: config },
    { name: "manifest.json", content: JSON.stringify(manifest) },
  ]);
}

/** An OCI image layout tarball with gzip layers. */
export async function ociLayoutTar(layers: Member[][]): Promise<{ tar: Buffer; configDigest: string }> {
  const tars = await Promise.all(layers.map(makeTar));
  const gz = tars.map((t) => gzipSync(t));
  const config = imageConfig(tars);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: {
        mediaType: "application/vnd.oci.image.config.v1+json",
        digest: `sha256:${sha(config)}`,
        size: config.length,
      },
      layers: gz.map((g) => ({
        mediaType: "application/vnd.oci.image.layer.v1.tar+gzip",
        digest: `sha256:${sha(g)}`,
        size: g.length,
      })),
    }),
  );
  const index = {
    schemaVersion: 2,
    manifests: [
      {
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        digest: `sha256:${sha(manifest)}`,
        size: manifest.length,
      },
    ],
  };
  const blob = (b: Buffer) => ({ name: `blobs/sha256/${sha(b)}`, content: b });
  const tar = await makeTar([
    { name: "oci-layout", content: JSON.stringify({ imageLayoutVersion: "1.0.0" }) },
    { name: "index.json", content: JSON.stringify(index) },
    { name: "blobs/", type: "directory" },
    { name: "blobs/sha256/", type: "directory" },
    blob(manifest),
    blob(config),
    ...gz.map(blob),
  ]);
  return { tar, configDigest: `sha256:${sha(config)}` };
}

/** Writes a buffer to `path` and returns the path. */
export function writeTo(path: string, data: Buffer): string {
  writeFileSync(path, data);
  return path;
}
