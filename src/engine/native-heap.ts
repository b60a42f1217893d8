/**
 * Gives the C heap's freed memory back to the OS: glibc's `malloc_trim(0)`,
 * called through koffi (an FFI with prebuilt binaries), where the process runs
 * on glibc; elsewhere (musl, macOS, Windows, or koffi missing) it does nothing.
 *
 * Why: a tiering step hands LanceDB a whole fragment (up to 64 MiB of frames,
 * a record batch about twice that) and LanceDB decodes and writes all of it at
 * once, on its tokio threads. glibc keeps what they free in per-thread arenas
 * (and the main thread's brk heap) and returns to the OS only a free top of
 * each heap, which a few long-lived allocations above it pin. bench:online's
 * 1M-entity memory case (log source, doubles) after its idle period: 636 MB
 * resident, 380 MB after one malloc_trim(0) from a debugger, the arenas 266 ->
 * 94 MB and brk 91 -> 7 (session 15). Setting MALLOC_ARENA_MAX or
 * MALLOC_MMAP_THRESHOLD_ only works from the environment at start, and
 * MALLOC_ARENA_MAX=2 moved the memory to brk rather than returning it (session 13).
 */
import { createRequire } from 'node:module';

type Trim = (pad: number) => number;

let trim: Trim | null | undefined;

/** glibc's malloc_trim, or null where there is none (loaded once). */
function mallocTrim(): Trim | null {
  if (trim !== undefined) return trim;
  trim = null;
  if (process.platform !== 'linux') return trim;
  try {
    const koffi = createRequire(import.meta.url)('koffi') as typeof import('koffi');
    // musl has no libc.so.6 (and no malloc_trim): the load throws, and trimming stays off.
    trim = koffi.load('libc.so.6').func('int malloc_trim(size_t pad)') as Trim;
  } catch {
    trim = null;
  }
  return trim;
}

/**
 * Returns freed memory of every malloc arena to the OS (madvise of their free
 * pages; live allocations are not moved). Blocks the calling thread while it
 * walks the arenas: in bench:online's memory case at most 6.6 ms of CPU a
 * call, 1-165 ms of wall time at load 8-21 (session 15), and each arena's
 * allocations wait while it is trimmed: call it off the event loop the ingest path needs (the LanceDB
 * thread does, once per tiering step). True when it ran (glibc), false where
 * there is nothing to call.
 */
export function trimNativeHeap(): boolean {
  const f = mallocTrim();
  if (!f) return false;
  f(0);
  return true;
}

/**
 * After a tiering step the heap is trimmed again every TRIM_EVERY_MS for
 * TRIM_FOR_MS (a new step starts the period again). A burst of ingest leaves
 * garbage on the main thread's V8 heap (array buffers' backing stores among
 * it, in malloc's brk heap) that V8's memory reducer collects 30-100 s after
 * its last full GC (100 s is its watchdog); what that frees stays in malloc's
 * free lists unless trimmed again. bench:online, log source, doubles, with one
 * trim per step only: brk 62 MB and thread arenas 61-70 MB resident at the
 * end (session 15).
 */
export const TRIM_EVERY_MS = 30_000;
export const TRIM_FOR_MS = 150_000;

/** Trims after each tiering step (`afterStep`), then every TRIM_EVERY_MS for TRIM_FOR_MS after the last one. The timer keeps no process alive. */
export class StepTrimmer {
  private timer?: ReturnType<typeof setTimeout>;
  private ticks = 0;

  constructor(private readonly trim: () => unknown = trimNativeHeap) {}

  afterStep(): void {
    this.trim();
    this.ticks = 0;
    if (!this.timer) this.next();
  }

  private next(): void {
    this.timer = setTimeout(() => {
      this.trim();
      if (++this.ticks * TRIM_EVERY_MS < TRIM_FOR_MS) this.next();
      else this.timer = undefined;
    }, TRIM_EVERY_MS);
    this.timer.unref?.();
  }
}
