/**
 * mulberry32: a small, fast PRNG that gives the same sequence for the same
 * seed, so generated test data and benchmark workloads repeat run to run.
 * Not for anything that needs unpredictability.
 */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
