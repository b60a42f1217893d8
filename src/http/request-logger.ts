/**
 * The logger asof hands Fastify. Fastify gives every request a child of it,
 * bound to the request id (`reqId`) at the route's level; pino's child costs
 * a new logger and the bindings serialised per request (and a custom
 * `childLoggerFactory` makes Fastify check the child's methods on every
 * request: an array and a closure each time). Here the request's logger is
 * a small object that makes the pino child only when a line is written at a
 * level the route keeps: a lookup at LOG_LEVEL=info (its routes log at warn,
 * server.ts) writes no line and builds no child, and any line a request does
 * write carries its `reqId`.
 */
import type { FastifyBaseLogger } from 'fastify';

type Pino = FastifyBaseLogger & { levelVal: number; levels: { values: Record<string, number> } };

/**
 * `root` as Fastify's logger: the same pino logger, whose `child(bindings)`
 * with a request id gives a RequestLogger. Other children (Fastify's own
 * server logger, plugins') are pino children that behave the same way.
 */
export function requestLoggers<T extends object>(root: T): T {
  const pino = root as unknown as Pino;
  const logger = Object.create(pino) as Pino;
  logger.child = ((bindings: Record<string, unknown>, opts?: { level?: string; serializers?: unknown }) =>
    'reqId' in bindings && opts?.serializers === undefined ? new RequestLogger(pino, bindings, opts?.level) : requestLoggers(pino.child(bindings, opts as never))) as Pino['child'];
  return logger as unknown as T;
}

type Level = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal';
/** Pino's numbers for its levels. */
const LEVEL_VALUES: Record<Level, number> = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60 };

/** The level methods, put on the prototype in the class body. */
interface RequestLogger extends Record<Level, (...a: unknown[]) => void> {}

/** One request's logger: pino's methods, writing through a pino child made on the first line at an enabled level. */
class RequestLogger {
  private live: Pino | undefined;
  /** The lowest level value written. */
  private at: number;

  constructor(
    private readonly parent: Pino,
    private readonly bindings: Record<string, unknown>,
    private readonly levelName: string | undefined,
  ) {
    this.at = levelName === undefined ? parent.levelVal : (parent.levels.values[levelName] ?? parent.levelVal);
  }

  private log(): Pino {
    return (this.live ??= this.parent.child(this.bindings, this.levelName === undefined ? undefined : { level: this.levelName }) as Pino);
  }

  get level(): string {
    return this.live?.level ?? this.levelName ?? this.parent.level;
  }
  set level(level: string) {
    this.log().level = level;
    this.at = this.log().levelVal;
  }

  /** A method per level (trace ... fatal): nothing below the request's level, not even the pino child. */
  static {
    for (const [name, value] of Object.entries(LEVEL_VALUES) as [Level, number][]) {
      RequestLogger.prototype[name] = function (this: RequestLogger, ...a: unknown[]) {
        if (this.at <= value) (this.log() as unknown as RequestLogger)[name](...a);
      };
    }
  }

  silent(): void {}
  child(bindings: Record<string, unknown>, opts?: object): FastifyBaseLogger {
    return this.log().child(bindings, opts as never);
  }
  isLevelEnabled(level: string): boolean {
    return (this.parent.levels.values[level] ?? Infinity) >= this.at;
  }
}
