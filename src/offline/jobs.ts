/**
 * Training-set jobs: large training sets run in the background, one at a
 * time, and their files wait to be downloaded.
 *
 * Under `<dataDir>/training-sets/`: `<id>.job.json` (the job's state, replaced
 * atomically at each change and every few seconds of progress) and
 * `<id>.data.<ext>` (the file). The file is written as `<id>.data.<ext>.partial`,
 * fsync'd, and renamed only when complete, so a reader never sees half a file.
 * When the process dies mid-job, the next start finds the job still "running"
 * in its state file, marks it failed and removes the partial file.
 *
 * Bounded: at most `maxPending` jobs queued or running (beyond, 429
 * ASOF_OVERLOADED), and a finished job (its state and its file) is removed
 * `retentionMs` after it finished, checked at start and every minute.
 *
 * Guarded as building one is: a job keeps the tables its request named (in
 * its state file, so this outlives a restart), and its status, its file and
 * its deletion are answered only to a caller who may read each of them
 * (`mayRead`: Engine.mayRead, where asof's internal tables need the audit
 * scope). Anyone else is told there is no such job.
 */
import { randomUUID } from 'node:crypto';
import { mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Caller } from '../access.js';
import { AsofError } from '../errors.js';
import type { Token } from '../engine/engine.js';
import type { PointInTime } from '../features/evaluator.js';
import type { Logger } from '../logger.js';
import { readJson, writeJsonAtomic } from '../util/fs.js';
import type { PreparedTrainingSet } from './training-set.js';
import { EXTENSIONS, type OutputFormat } from './writers.js';

export type JobState = 'queued' | 'running' | 'succeeded' | 'failed';

export interface JobInfo {
  id: string;
  state: JobState;
  progress: { rows: number; total: number };
  format: OutputFormat;
  pointInTime: PointInTime;
  token: Token;
  /** Epoch ms. */
  createdAt: number;
  startedAt?: number;
  finishedAt?: number;
  /** Size of the finished file, bytes. */
  bytes?: number;
  error?: string;
}

/** What the state file holds: the job as answered, and what a caller must be allowed to read to see it. */
interface JobRecord extends JobInfo {
  /**
   * The tables the request named (its entity rows' table, if any): a caller
   * who may not read one of them could not have built the job, and does not
   * see it. Absent from state files written before jobs kept it; then every
   * table of the job's token stands in (all it read, a superset).
   */
  tables: string[];
}

/** Whether `caller` may read a table of this name (Engine.mayRead, the one rule for named tables). */
export type MayRead = (table: string, caller: Caller) => boolean;

/** How often a running job's progress is written to its state file, ms. */
const PERSIST_EVERY_MS = 2000;

export interface JobLimits {
  /** Jobs queued or running at once; beyond, submit answers 429. */
  maxPending: number;
  /** How long a finished job and its file are kept, ms. */
  retentionMs: number;
}

const DEFAULT_LIMITS: JobLimits = { maxPending: 8, retentionMs: 24 * 3600_000 };
const SWEEP_EVERY_MS = 60_000;

export class TrainingSetJobs {
  private readonly jobs = new Map<string, JobRecord>();
  private queue: Promise<void> = Promise.resolve();
  private pending = 0;
  private closed = false;
  private readonly stop = new AbortController();
  private sweeper?: NodeJS.Timeout;

  private constructor(
    private readonly dir: string,
    private readonly logger: Logger,
    private readonly now: () => number,
    private readonly mayRead: MayRead,
    private readonly limits: JobLimits,
  ) {}

  /** Loads the jobs of earlier runs; a job that was queued or running when its process stopped is now failed. */
  static async open(dataDir: string, logger: Logger, now: () => number, mayRead: MayRead, limits: Partial<JobLimits> = {}): Promise<TrainingSetJobs> {
    const j = new TrainingSetJobs(join(dataDir, 'training-sets'), logger, now, mayRead, { ...DEFAULT_LIMITS, ...limits });
    await mkdir(j.scratchDir, { recursive: true });
    for (const name of await readdir(j.dir)) {
      if (name.endsWith('.partial') || name.endsWith('.spill') || name.endsWith('.tmp')) await rm(join(j.dir, name), { recursive: true, force: true });
      if (!name.endsWith('.job.json')) continue;
      const info = await readJson<(Omit<JobRecord, 'tables'> & { tables?: string[] }) | null>(join(j.dir, name), null);
      if (!info) continue;
      const record: JobRecord = { ...info, tables: info.tables ?? Object.keys(info.token) };
      if (record.state === 'queued' || record.state === 'running') {
        record.state = 'failed';
        record.error = 'the server stopped while the job ran; submit it again';
        record.finishedAt = now();
        await rm(j.dataPath(record), { force: true });
        await writeJsonAtomic(j.statePath(record.id), record);
        logger.warn({ job: record.id }, 'training-set job was interrupted by a restart; marked failed');
      }
      j.jobs.set(record.id, record);
    }
    // Scratch files belong to requests of the previous run, which are all over now.
    await rm(j.scratchDir, { recursive: true, force: true });
    await mkdir(j.scratchDir, { recursive: true });
    await j.sweep();
    j.sweeper = setInterval(() => void j.sweep(), SWEEP_EVERY_MS);
    j.sweeper.unref();
    return j;
  }

  /** Removes finished jobs older than the retention; returns how many. */
  async sweep(): Promise<number> {
    const cutoff = this.now() - this.limits.retentionMs;
    let removed = 0;
    for (const info of [...this.jobs.values()]) {
      if ((info.state === 'succeeded' || info.state === 'failed') && (info.finishedAt ?? info.createdAt) <= cutoff) {
        await this.remove(info).catch((e) => this.logger.warn({ job: info.id, err: String(e) }, 'could not remove an expired training-set job'));
        removed++;
      }
    }
    return removed;
  }

  /** Uploads and inline answers in the making; emptied at start-up. */
  get scratchDir(): string {
    return join(this.dir, 'scratch');
  }

  /** A fresh path in the scratch folder. */
  scratchPath(suffix = ''): string {
    return join(this.scratchDir, randomUUID() + suffix);
  }

  private statePath(id: string): string {
    return join(this.dir, `${id}.job.json`);
  }

  private dataPath(info: Pick<JobInfo, 'id' | 'format'>): string {
    return join(this.dir, `${info.id}.data.${EXTENSIONS[info.format]}`);
  }

  /**
   * Queues a prepared training set; `cleanup` runs when the job ends (it
   * removes an upload). The job keeps `prepared.tables`: who may see it.
   */
  async submit(prepared: PreparedTrainingSet, cleanup?: () => Promise<void>): Promise<JobInfo> {
    if (this.closed) throw new AsofError('ASOF_NOT_READY', 'the server is stopping');
    if (this.pending >= this.limits.maxPending) {
      throw new AsofError('ASOF_OVERLOADED', `${this.pending} training-set jobs are queued or running (at most ${this.limits.maxPending}); retry once one has finished`, { kind: 'trainingSetJobs', retryAfterSeconds: 5 });
    }
    const info: JobRecord = {
      id: `ts_${randomUUID().replaceAll('-', '')}`,
      state: 'queued',
      progress: { rows: 0, total: prepared.total },
      format: prepared.format,
      pointInTime: prepared.pointInTime,
      token: prepared.token,
      createdAt: this.now(),
      tables: [...prepared.tables],
    };
    this.pending++;
    try {
      await writeJsonAtomic(this.statePath(info.id), info);
    } catch (e) {
      this.pending--;
      throw e;
    }
    this.jobs.set(info.id, info);
    this.queue = this.queue
      .then(() => this.run(info, prepared))
      .catch((e) => this.logger.error({ job: info.id, err: String(e) }, 'training-set job could not record its state'))
      .finally(async () => {
        this.pending--;
        await prepared.close().catch(() => undefined);
        await cleanup?.().catch(() => undefined);
      });
    return answer(info);
  }

  private async run(info: JobRecord, prepared: PreparedTrainingSet): Promise<void> {
    if (this.closed) return;
    const final = this.dataPath(info);
    const partial = `${final}.partial`;
    info.state = 'running';
    info.startedAt = this.now();
    await writeJsonAtomic(this.statePath(info.id), info);
    let persisted = Date.now();
    // Progress is saved in the background, one write at a time (they share a temporary file name).
    let saving: Promise<void> = Promise.resolve();
    try {
      await prepared.write(
        partial,
        (p) => {
          info.progress = { ...p };
          if (Date.now() - persisted > PERSIST_EVERY_MS) {
            persisted = Date.now();
            saving = saving.then(() => writeJsonAtomic(this.statePath(info.id), info)).catch(() => undefined);
          }
        },
        this.stop.signal,
      );
      await fsyncFile(partial);
      await rename(partial, final);
      info.bytes = (await stat(final)).size;
      info.state = 'succeeded';
    } catch (e) {
      info.state = 'failed';
      info.error = (e as Error).message;
      await rm(partial, { force: true });
      this.logger.warn({ job: info.id, err: String(e) }, 'training-set job failed');
    }
    await saving;
    info.finishedAt = this.now();
    await writeJsonAtomic(this.statePath(info.id), info);
  }

  /**
   * The job `id`, as `caller` may see it: 404 ASOF_NOT_FOUND when there is
   * none, and the same answer when `caller` may not read a table the job's
   * request named (a 403 would confirm that the id exists).
   */
  private visible(id: string, caller: Caller): JobRecord {
    const info = this.jobs.get(id);
    if (!info || !info.tables.every((t) => this.mayRead(t, caller))) throw new AsofError('ASOF_NOT_FOUND', `no training-set job "${id}"`, { id });
    return info;
  }

  /** A job's state and progress (see `visible` for who is answered). */
  get(id: string, caller: Caller): JobInfo {
    return answer(this.visible(id, caller));
  }

  /** The finished file of a job (see `visible`); 409 while it runs or when it failed. */
  data(id: string, caller: Caller): { path: string; format: OutputFormat; bytes: number } {
    const info = this.visible(id, caller);
    if (info.state !== 'succeeded') {
      throw new AsofError('ASOF_CONFLICT', info.state === 'failed' ? `training-set job "${id}" failed: ${info.error}` : `training-set job "${id}" is ${info.state}; its file is not ready`, { id, state: info.state });
    }
    return { path: this.dataPath(info), format: info.format, bytes: info.bytes ?? 0 };
  }

  /** Removes a finished job and its file (see `visible`); 409 while it is queued or running. */
  async delete(id: string, caller: Caller): Promise<void> {
    const info = this.visible(id, caller);
    if (info.state === 'queued' || info.state === 'running') throw new AsofError('ASOF_CONFLICT', `training-set job "${id}" is ${info.state}; delete it once it has ended`, { id, state: info.state });
    await this.remove(info);
  }

  private async remove(info: JobRecord): Promise<void> {
    this.jobs.delete(info.id);
    await rm(this.dataPath(info), { force: true });
    await rm(this.statePath(info.id), { force: true });
  }

  /** Stops taking jobs and stops the running one (between batches); it and any queued ones are recorded as failed. */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.sweeper);
    this.stop.abort(new Error('the server stopped before the job finished; submit it again'));
    await this.queue;
    for (const info of this.jobs.values()) {
      if (info.state !== 'queued' && info.state !== 'running') continue;
      info.state = 'failed';
      info.error = 'the server stopped before the job finished; submit it again';
      info.finishedAt = this.now();
      await writeJsonAtomic(this.statePath(info.id), info).catch(() => undefined);
    }
  }
}

/** A job as answered: a copy, without what it keeps for access checks. */
function answer(info: JobRecord): JobInfo {
  const { tables: _tables, ...rest } = info;
  return { ...rest, progress: { ...info.progress } };
}

async function fsyncFile(path: string): Promise<void> {
  const fh = await open(path, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
