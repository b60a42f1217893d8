/**
 * The logger every module takes: pino's shape (Fastify uses the same
 * instance), so services never depend on the HTTP layer for logging.
 */
import { pino, type Logger as PinoLogger } from 'pino';

export interface Logger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  debug(obj: object, msg?: string): void;
  child(bindings: object): Logger;
}

export function createLogger(level: string): Logger & PinoLogger {
  return pino({ level, base: { service: 'asof' } });
}

/** A logger that drops everything, for tests and tools. */
export const silentLogger: Logger = pino({ level: 'silent' });
