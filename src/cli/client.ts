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
    /** The error's `details`, as the server sent them. */
    readonly details?: unknown,
  ) {
    super(message);
  }
}

/** No answer came: the server was not reached, or the connection ended before its answer (`reached`: the request may have been acted on). */
export class ConnectionError extends Error {
  constructor(
    message: string,
    readonly reached: boolean,
  ) {
    super(message);
  }
}

/** Errors of connecting (nothing was sent), as Node names them; any other failure of a request came after it reached the server. */
const NOT_CONNECTED = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'UND_ERR_CONNECT_TIMEOUT']);

interface RequestOptions {
  json?: unknown;
  stream?: Readable;
  contentType?: string;
  headers?: Record<string, string>;
}

export class Client {
  constructor(
    private readonly base: string,
    private readonly apiKey?: string,
  ) {}

  /** A request; `body` is JSON (object) or a stream sent as is with `contentType`. Returns the Response (status checked). */
  async raw(method: string, path: string, opts: RequestOptions = {}): Promise<Response> {
    const headers: Record<string, string> = { ...opts.headers };
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
      const cause = (e as Error & { cause?: Error & { code?: string } }).cause;
      const why = cause?.message ?? (e as Error).message;
      if (cause?.code && NOT_CONNECTED.has(cause.code)) throw new ConnectionError(`cannot reach asof at ${this.base} (${why}); start it with \`asof serve\`, pass --url, or use --data-dir`, false);
      throw new ConnectionError(`the connection to asof at ${this.base} ended before its answer (${why})`, true);
    }
    if (res.status >= 400) {
      const text = await res.text();
      let code = 'HTTP_' + res.status;
      let message = text;
      let details: unknown;
      try {
        const parsed = JSON.parse(text) as { error?: { code: string; message: string; details?: unknown } };
        if (parsed.error) ({ code, message, details } = parsed.error);
      } catch {
        /* not JSON */
      }
      throw new ApiError(res.status, code, `${code}: ${message}`, details);
    }
    return res;
  }

  async json<T>(method: string, path: string, opts: RequestOptions = {}): Promise<{ status: number; body: T }> {
    const res = await this.raw(method, path, opts);
    try {
      return { status: res.status, body: (await res.json()) as T };
    } catch (e) {
      throw new ConnectionError(`the answer of asof at ${this.base} was cut short (${(e as Error & { cause?: Error }).cause?.message ?? (e as Error).message})`, true);
    }
  }
}
