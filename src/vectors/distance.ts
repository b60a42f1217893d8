/**
 * Distances exactly as Lance defines them, so hot rows scored here and
 * candidates from a Lance index sort on one scale (smaller is nearer):
 *   l2     squared Euclidean distance, sum (a_i - b_i)^2
 *   cosine 1 - a.b / (|a| |b|), in [0, 2]; 1 when either vector is all zeros
 *   dot    -(a.b)
 * Sums run in doubles over float32 inputs.
 */
export const METRICS = ['cosine', 'l2', 'dot'] as const;
export type Metric = (typeof METRICS)[number];
export const DEFAULT_METRIC: Metric = 'cosine';

export type DistanceFn = (a: Float32Array, b: Float32Array) => number;

function l2(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) {
    const d = a[i] - b[i];
    s += d * d;
  }
  return s;
}

function dot(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  // 0 - s, not -s: no -0 for orthogonal vectors.
  return 0 - s;
}

function cosine(a: Float32Array, b: Float32Array): number {
  let ab = 0, aa = 0, bb = 0;
  for (let i = 0; i < a.length; i++) {
    ab += a[i] * b[i];
    aa += a[i] * a[i];
    bb += b[i] * b[i];
  }
  if (aa === 0 || bb === 0) return 1;
  return 1 - ab / Math.sqrt(aa * bb);
}

export const DISTANCE: Record<Metric, DistanceFn> = { l2, dot, cosine };
