/**
 * A small REST client for the CLI commands that talk to a running server.
 * Errors come back as asof's error shape and are thrown with its message.
 */
import type { Readable } from 'node:stream';

/** The server `asof serve` starts with the same environment: PORT (as the server reads it), else 8080. */
export const DEFAULT_URL = `http://127.0.0.1:${/^\d+$/.test(process.env.PORT ?? '') ? process.env.PORT : 8080}`;

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export class Client {
  constructor(
    private readonly base: string,
    private readonly apiKey?: string,
  ) {}

  /** A request; `body` is JSON (object) or a stream sent as is with `contentType`. Returns the Response (status checked). */
  async raw(method: string, path: string, opts: { json?: unknown; stream?: Readable; contentType?: string } = {}): Promise<Response> {
    const headers: Record<string, string> = {};
    if (this.apiKey) headers.authorization = `Bearer ${this.apiKey}`;
    let body: BodyInit | undefined;
    if (opts.json !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(opts.json);
    } else if (opts.stream) {
      headers['content-type'] = opts.contentType ?? 'application/octet-stream';
      body = opts.stream as unknown as BodyInit;
    }
    let res: Response;
    try {
      res = await fetch(new URL(path, this.base), { method, headers, body, ...(opts.stream ? { duplex: 'half' } : {}) } as RequestInit);
    } catch (e) {
      throw new Error(`cannot reach asof at ${this.base} (${(e as Error & { cause?: Error }).cause?.message ?? (e as Error).message}); start it with \`asof serve\`, pass --url, or use --data-dir`);
    }
    if (res.status >= 400) {
      const text = await res.text();
      let code = 'HTTP_' + res.status;
      let message = text;
      try {
        const parsed = JSON.parse(text) as { error?: { code: string; message: string } };
        if (parsed.error) ({ code, message } = parsed.error);
      } catch {
        /* not JSON */
      }
      throw new ApiError(res.status, code, `${code}: ${message}`);
    }
    return res;
  }

  async json<T>(method: string, path: string, opts: { json?: unknown; stream?: Readable; contentType?: string } = {}): Promise<{ status: number; body: T }> {
    const res = await this.raw(method, path, opts);
    return { status: res.status, body: (await res.json()) as T };
  }
}
