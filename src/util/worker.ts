/**
 * Starts a worker thread from a module beside the caller: its .js file when
 * compiled, its .ts file from TypeScript source (tests, through tsx), where
 * the worker registers tsx itself first: Node 20 applies no --import hook in
 * a worker.
 */
import { Worker } from 'node:worker_threads';

/** A worker running module `name` (no extension) beside `base` (the caller's import.meta.url). */
export function startWorker(name: string, base: string): Worker {
  const fromSource = base.endsWith('.ts');
  const url = new URL(`${name}${fromSource ? '.ts' : '.js'}`, base);
  return fromSource ? new Worker(`import('tsx/esm/api').then((t) => { t.register(); return import(${JSON.stringify(url.href)}); })`, { eval: true }) : new Worker(url);
}
