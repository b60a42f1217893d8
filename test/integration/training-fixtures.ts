/**
 * Shared pieces of the training-set tests: a seeded PRNG, a clock the tests
 * move by hand, and a way to build a training set straight through the
 * service (so a test can also force the evaluator path).
 */
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { randomUUID } from 'node:crypto';
import { UNRESTRICTED } from '../../src/access.js';
import type { Services } from '../../src/services.js';
import type { Internal, PreparedTrainingSet, TrainingSetRequest } from '../../src/offline/training-set.js';
import { rng as mulberry32 } from '../../support/rng.js';

/** Seeded draws over support/rng.ts: the same sequence for the same seed. */
export function rng(seed: number): { next(): number; int(lo: number, hi: number): number; pick<T>(xs: readonly T[]): T; chance(p: number): boolean } {
  const next = mulberry32(seed);
  return {
    next,
    int: (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)),
    pick: (xs) => xs[Math.floor(next() * xs.length)],
    chance: (p) => next() < p,
  };
}

/** A clock the test moves by hand (epoch ms). */
export class Clock {
  constructor(public t: number) {}
  now = (): number => this.t;
  advance(ms: number): number {
    this.t += ms;
    return this.t;
  }
}

/** Builds a training set as JSON through the service; returns its rows. */
export async function trainingRows(services: Pick<Services, 'trainingSets'>, req: TrainingSetRequest, opts: Internal = {}): Promise<Record<string, unknown>[]> {
  const p = await services.trainingSets.prepare({ ...req, format: 'json' }, UNRESTRICTED, opts);
  const path = join(tmpdir(), `asof-ts-${randomUUID()}.json`);
  try {
    await p.write(path);
    return (JSON.parse(await readFile(path, 'utf8')) as { rows: Record<string, unknown>[] }).rows;
  } finally {
    await p.close();
    await rm(path, { force: true });
  }
}

/** A training set whose file is written when `finish` is called. */
export function held(): { prepared: PreparedTrainingSet; finish: () => void } {
  let finish!: () => void;
  const done = new Promise<void>((r) => (finish = r));
  const prepared: PreparedTrainingSet = {
    total: 1,
    columns: [],
    format: 'json',
    pointInTime: 'event',
    token: {},
    tables: [],
    async write(path) {
      await done;
      await writeFile(path, '{"rows":[]}');
    },
    async close() {},
  };
  return { prepared, finish };
}
