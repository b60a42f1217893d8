/**
 * The cold tier: where a table's changelog records go once they are older than
 * ASOF_TIER_AFTER, so the hot log (segments.ts) can be deleted. One backend
 * kind, one small interface; the Lance implementation is lance-tier.ts.
 *
 * Invariant: a table's cold tier holds exactly the records [0, end()), whole
 * frames only, each frame's stored bytes (header and payload, as the hot log
 * had them) beside its records. `end()` is read back from the store itself,
 * and `append` is one atomic commit, so a crash anywhere leaves either the
 * old end or the new one: resuming from `end()` neither loses nor duplicates.
 */
import type { FrameMeta } from './log.js';
import type { CompiledColumn } from './schema.js';

/** One frame as the cold tier takes and gives it back. */
export interface ColdFrame {
  meta: FrameMeta;
  /** Header and payload, exactly as in the changelog. */
  bytes: Uint8Array;
}

/** A column as the cold tier stores it (what crosses to its worker thread). */
export type ColdColumn = Pick<CompiledColumn, 'name' | 'type'>;

/** A record batch the cold tier answered with, as Arrow IPC stream bytes (one batch, `_asof_change`, `_asof_offset`, `_asof_commit_time` and the table's columns). */
export type ColdRecords = Uint8Array;

/** A key column's value to match, typed as the column. */
export interface KeyMatch {
  column: string;
  /** A Lance SQL literal (numbers, true/false, quoted strings) built by the caller from canonical values. */
  literal: string;
}

export interface ColdTable {
  /** Records held: [0, end). */
  end(): number;
  /**
   * Appends frames that continue exactly at end(), in one commit. A commit
   * that landed though the store's call failed is taken as done (end() moves);
   * one that did not fails the append, and end() stays. `columns`
   * are the table's columns now (older frames read added columns as null).
   * `given`: the frames' bytes are views into this buffer, which the caller
   * gives up (a tier in another thread may move it there rather than copy).
   */
  append(frames: ColdFrame[], columns: ColdColumn[], given?: ArrayBuffer): Promise<void>;
  /** The frames starting in [from, to), ascending by offset (`from` is a frame's first offset). */
  frames(from: number, to: number): Promise<ColdFrame[]>;
  /**
   * Records in [from, to) whose key columns equal `key`, ascending by offset.
   * `expected` is how many the caller's key index says there are: when they
   * are a good part of the range, the range may be scanned and its rows
   * picked by key instead of looked up through the key columns' index.
   */
  keyRecords(key: KeyMatch[], from: number, to: number, expected: number): Promise<ColdRecords[]>;
  /** Why the upkeep (index build, compaction) after the last append failed, when it did: the append itself succeeded. */
  maintenanceFailure?(): string | undefined;
  close(): Promise<void>;
}

export interface ColdTier {
  /**
   * Opens (not creating) a table's cold data; `keyColumns` get a scalar index
   * once there is data. `created`: the table's folder was made just now, so it
   * has no record yet; its end may be taken as 0 until its first append or read,
   * which checks it (an append that does not continue the stored end is refused).
   */
  open(table: string, keyColumns: string[], opts?: { created?: boolean }): Promise<ColdTable>;
  /** Where it stores (for logs and /metrics); never includes credentials. */
  readonly where: string;
  close(): Promise<void>;
}
