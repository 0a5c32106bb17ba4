/** Named volumes of a key: create, list, get, delete (mounted with `volumes` at sandbox creation). */
import { createRoute } from "@hono/zod-openapi";
import { type App, addRoute, json } from "../context.ts";
import { checkClientMetadata, OWNER_LABEL, ownedVolume, publicVolumeInfo } from "../ownership.ts";
import { CreateVolumeBody, ErrorSchema, VolumeInfoSchema, VolumeParams } from "../schemas.ts";

const errors = { default: json(ErrorSchema, "an error (see docs/server.md for codes and statuses)") };
const tags = ["volumes"];

/** Registers the volume routes. */
export function volumeRoutes(app: App): void {
  addRoute(
    app,
    createRoute({
      method: "post",
      path: "/v1/volumes",
      tags,
      summary: "create an empty named volume (names are unique per key)",
      request: { body: { ...json(CreateVolumeBody, "the volume"), required: true } },
      responses: { 201: json(VolumeInfoSchema, "the volume"), ...errors },
    }),
    async (c) => {
      const body = c.req.valid("json");
      checkClientMetadata(body.metadata);
      const v = await c.var.state.kiln.createVolume(body.name, {
        metadata: { ...(body.metadata ?? {}), [OWNER_LABEL]: c.var.key.id },
        signal: c.req.raw.signal,
      });
      return c.json(publicVolumeInfo(v), 201);
    },
  );

  addRoute(
    app,
    createRoute({
      method: "get",
      path: "/v1/volumes",
      tags,
      summary: "this key's volumes, oldest first",
      responses: { 200: json(VolumeInfoSchema.array(), "the volumes"), ...errors },
    }),
    async (c) => {
      const list = await c.var.state.kiln.volumes({ metadata: { [OWNER_LABEL]: c.var.key.id } });
      return c.json(list.map(publicVolumeInfo), 200);
    },
  );

  addRoute(
    app,
    createRoute({
      method: "get",
      path: "/v1/volumes/{volumeId}",
      tags,
      summary: "a volume, by id or name",
      request: { params: VolumeParams },
      responses: { 200: json(VolumeInfoSchema, "the volume"), ...errors },
    }),
    async (c) => {
      const { volumeId } = c.req.valid("param");
      return c.json(publicVolumeInfo(await ownedVolume(c.var.state.kiln, c.var.key.id, volumeId)), 200);
    },
  );

  addRoute(
    app,
    createRoute({
      method: "delete",
      path: "/v1/volumes/{volumeId}",
      tags,
      summary: "delete a volume and its files (conflict while a sandbox mounts it)",
      request: { params: VolumeParams },
      responses: { 204: { description: "deleted" }, ...errors },
    }),
    async (c) => {
      const { volumeId } = c.req.valid("param");
      const v = await ownedVolume(c.var.state.kiln, c.var.key.id, volumeId);
      await c.var.state.kiln.removeVolume(v.id, { signal: c.req.raw.signal });
      return c.body(null, 204);
    },
  );
}
