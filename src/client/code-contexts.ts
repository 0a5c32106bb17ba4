import type { CodeContext } from "../core/code-contexts.ts";
import type { Transport } from "./http.ts";

/** `sandbox.codeContexts` over HTTP: the interpreters whose state cells share. */
export class RemoteCodeContexts {
  private readonly http: Transport;
  private readonly path: string;

  /** @internal */
  constructor(http: Transport, sandboxPath: string) {
    this.http = http;
    this.path = `${sandboxPath}/code/contexts`;
  }

  /**
   * Creates a context (language python, js or bash; default python) and starts its interpreter.
   * @throws InvalidArgumentError (unknown language, bad cwd, an id in use), UnsupportedError (the tier has no such interpreter), NotFoundError
   */
  async create(
    options: { language?: string; cwd?: string; id?: string; signal?: AbortSignal } = {},
  ): Promise<CodeContext> {
    const { signal, ...body } = options;
    return this.http.json<CodeContext>("POST", this.path, { json: body, signal });
  }

  /** The contexts, oldest first. @throws NotFoundError */
  async list(options: { signal?: AbortSignal } = {}): Promise<CodeContext[]> {
    return this.http.json<CodeContext[]>("GET", this.path, { signal: options.signal });
  }

  /** Restarts a context's interpreter: its state is lost. @throws NotFoundError */
  async restart(id: string, options: { signal?: AbortSignal } = {}): Promise<void> {
    await this.http.empty("POST", `${this.path}/${encodeURIComponent(id)}/restart`, {
      signal: options.signal,
    });
  }

  /** Removes a context and ends its interpreter. @throws NotFoundError */
  async remove(id: string, options: { signal?: AbortSignal } = {}): Promise<void> {
    await this.http.empty("DELETE", `${this.path}/${encodeURIComponent(id)}`, { signal: options.signal });
  }
}
