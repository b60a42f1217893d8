/**
 * The decision log: one row per decision in the internal pk table
 * `_asof_decisions` (keyed by decision id). It is an ordinary changelog-backed
 * table, so a decision is durable (fdatasync'd) when `put` resolves, carries
 * chain hashes like every frame, and tiers like any other table.
 *
 * A decision records what was asked (entity, selection), what was decided
 * (outcome, model, attributes), when (decidedAt; for a recorded lookup also the
 * serving time), what was read (the token, and each source table's chain head
 * at that moment), what was answered (served), and the view definitions the
 * answer was computed with (so a later redefinition does not change its replay).
 */
import { AsofError } from '../errors.js';
import type { Engine, Token } from '../engine/engine.js';
import type { Table } from '../engine/table.js';
import type { FeatureViewDef } from '../features/definitions.js';
import type { FeatureStatus } from '../features/evaluator.js';

export const DECISIONS_TABLE = '_asof_decisions';

export interface FeatureSelection {
  features?: string[];
  view?: string;
  service?: string;
}

/** What an answer held for one entity: JSON values, statuses, RFC 3339 event times, keyed by `view:feature`. */
export interface ServedValues {
  features: Record<string, unknown>;
  statuses: Record<string, FeatureStatus>;
  eventTimes: Record<string, string | null>;
}

/** A table's chain head when the decision read it: the newest offset and the hash of the frame holding it (hex). */
export interface ChainHead {
  offset: number;
  hash: string;
}

export interface Decision {
  id: string;
  /** The entity key as text (the canonical key of the views' entity column). */
  entity: string;
  selection: FeatureSelection;
  /** `view:feature` references, in answer order. */
  features: string[];
  outcome: string | null;
  model: string | null;
  /** Epoch ms (UTC). */
  decidedAt: number;
  /** Epoch ms the served values were evaluated at (recorded lookups); null when the caller supplied them. */
  servedAt: number | null;
  token: Token | null;
  served: ServedValues | null;
  heads: Record<string, ChainHead> | null;
  attributes: Record<string, unknown> | null;
  /** "lookup": recorded by the lookup itself; "api": POST /decisions; "lookup+api": a recorded lookup completed by POST /decisions. */
  recordedBy: 'lookup' | 'api' | 'lookup+api';
  /** Definitions of the views read, as they were when the decision was made. */
  views: Record<string, FeatureViewDef>;
  /** Ed25519 signature over the heads (ASOF_AUDIT_SIGNING_KEY), base64; null when unsigned. */
  signature: string | null;
  /** The posted body as canonical JSON (identical re-sends are no-ops); null for a lookup not yet completed. */
  request: string | null;
}

const COLUMNS = [
  { name: 'id', type: 'string', nullable: false },
  { name: 'entity', type: 'string', nullable: false },
  { name: 'outcome', type: 'string', nullable: true },
  { name: 'decidedAt', type: 'timestamp', nullable: false },
  { name: 'decision', type: 'json', nullable: false },
];

export class DecisionLog {
  /** Per-id queue: the check-then-write of an id (or of a batch's ids together) runs alone; different ids commit together (group commit). */
  private readonly locks = new Map<string, Promise<unknown>>();

  /** Undefined on a read replica, which holds no tables: decisions are recorded on the primary. */
  private constructor(private readonly table: Table | undefined) {}

  static async open(engine: Engine): Promise<DecisionLog> {
    if (engine.role === 'replica') return new DecisionLog(undefined);
    if (!engine.has(DECISIONS_TABLE)) {
      await engine.defineTable(DECISIONS_TABLE, { kind: 'pk', columns: COLUMNS, primaryKey: ['id'], eventTime: 'decidedAt' }, { internal: true });
    }
    return new DecisionLog(engine.table(DECISIONS_TABLE));
  }

  get(id: string): Decision | undefined {
    const row = this.table?.get(id);
    return row ? (row.decision as Decision) : undefined;
  }

  /** Decisions, newest decidedAt first (ties: id descending). Times are epoch ms, inclusive; `entity` says whether a stored entity is the one asked for. */
  list(filter: { entity?: (stored: string, d: Decision) => boolean; from?: number; to?: number; outcome?: string }, limit: number): Decision[] {
    const out: Decision[] = [];
    if (!this.table) return out;
    for (const row of this.table.liveRows()) {
      const t = row.decidedAt as number;
      if (filter.entity !== undefined && !filter.entity(row.entity as string, row.decision as Decision)) continue;
      if (filter.outcome !== undefined && row.outcome !== filter.outcome) continue;
      if ((filter.from !== undefined && t < filter.from) || (filter.to !== undefined && t > filter.to)) continue;
      out.push(row.decision as Decision);
    }
    out.sort((a, b) => b.decidedAt - a.decidedAt || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
    return out.slice(0, limit);
  }

  /**
   * Runs `decide` with the id's stored decision (or undefined) and writes what
   * it returns, durably, before resolving; `decide` returning null writes
   * nothing (an identical re-send). One id at a time.
   */
  update(id: string, decide: (existing: Decision | undefined) => Decision | null): Promise<{ decision: Decision; written: boolean }> {
    return this.updateAll([{ id, decide }]).then((r) => r[0]);
  }

  /**
   * update for several ids at once, all or nothing: runs when every id's
   * queue has reached it (the ids are queued together, so two batches cannot
   * each hold a part of the other's), decides each, and writes every returned
   * decision in one table write. A `decide` that throws writes none of them.
   * Ids must be distinct.
   */
  updateAll(items: { id: string; decide: (existing: Decision | undefined) => Decision | null }[]): Promise<{ decision: Decision; written: boolean }[]> {
    const table = this.table;
    if (!table) return Promise.reject(new AsofError('ASOF_CONFLICT', 'this asof is a read replica (ASOF_ROLE=replica): decisions are recorded on the primary', { role: 'replica' }));
    const prev = Promise.all(items.map(({ id }) => this.locks.get(id)));
    const run = prev.then(async () => {
      const out = items.map(({ id, decide }) => {
        const existing = this.get(id);
        const next = decide(existing);
        return next ? { decision: next, written: true } : { decision: existing!, written: false };
      });
      const rows = out.filter((r) => r.written).map(({ decision: d }) => ({ id: d.id, entity: d.entity, outcome: d.outcome, decidedAt: d.decidedAt, decision: d }));
      if (rows.length > 0) await table.write(rows, 'upsert');
      return out;
    });
    const tail = run.catch(() => undefined);
    for (const { id } of items) {
      this.locks.set(id, tail);
      void tail.then(() => {
        if (this.locks.get(id) === tail) this.locks.delete(id);
      });
    }
    return run;
  }
}

/** JSON with object keys sorted: equal values give equal text, whatever order their keys came in. */
export function canonicalJson(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) => {
    if (x === null || typeof x !== 'object' || Array.isArray(x)) return x;
    const o = x as Record<string, unknown>;
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(o).sort()) if (o[k] !== undefined) out[k] = o[k];
    return out;
  });
}

/** 409 for an id recorded otherwise: by another body (POST /decisions) or another lookup (`decision=`); `why` says which. */
export function conflict(id: string, why: string): AsofError {
  return new AsofError('ASOF_CONFLICT', `decision "${id}" was recorded otherwise: ${why}`, { id, reason: why });
}
