/**
 * The process's LanceDB thread (lance-host.ts starts it): it imports each
 * handler module the first time a request names it, and answers each request
 * with the named export's `{ value, transfer? }`, by id, in any order; an
 * error is answered as its message. It never closes its port: the thread
 * lives as long as the process (lance-host.ts says why).
 */
import { parentPort } from 'node:worker_threads';
import { isAsofError } from '../errors.js';
import type { HostAnswer, HostReply, HostRequest } from './lance-host.js';

type Handlers = Record<string, (...args: unknown[]) => Promise<HostAnswer>>;

if (!parentPort) throw new Error('lance-host-worker.ts runs only as a worker thread (lance-host.ts)');
const port = parentPort;
const modules = new Map<string, Promise<Handlers>>();
/** Requests being answered; and whether the thread is to stop (`die`, for tests) once they are done. */
const running = new Set<Promise<unknown>>();
let dying = false;

async function handle(req: HostRequest): Promise<HostAnswer> {
  let m = modules.get(req.module);
  if (!m) modules.set(req.module, (m = import(req.module) as Promise<Handlers>));
  const f = (await m)[req.op];
  if (typeof f !== 'function') throw new Error(`LanceDB thread: ${req.module} has no handler "${req.op}"`);
  return f(...req.args);
}

/**
 * `die` (LanceHost.kill, for tests): the thread stops as a crash would, no
 * request answered, but only once the LanceDB calls it has under way are
 * done. Stopping it under them (Worker.terminate) aborts the whole process:
 * napi-rs 3.9.4 resolves their promises into the torn-down isolate
 * (napi-rs/napi-rs#2460; 17 of 20 runs of scripts/lance-crash.mjs terminate).
 */
function die(): void {
  dying = true;
  void Promise.allSettled([...running]).then(() => process.exit(1));
}

port.on('message', (req: HostRequest | 'die') => {
  if (req === 'die') return die();
  if (dying) return;
  const p = handle(req).then(
    ({ value, transfer }) => dying || port.postMessage({ id: req.id, value } satisfies HostReply, transfer ?? []),
    // An asof error keeps its code and details across the thread (a damaged cold frame is a 503, not a 500).
    (e: unknown) => dying || port.postMessage({ id: req.id, error: e instanceof Error ? e.message : String(e), ...(isAsofError(e) ? { code: e.code, details: e.details } : {}) } satisfies HostReply),
  );
  running.add(p);
  void p.finally(() => running.delete(p));
});
