/**
 * The lookup routes write evaluated features as JSON text from fragments
 * (http/features-json.ts); what they write must be exactly what
 * JSON.stringify gives for the same answer as objects (`toObjects`, which
 * gRPC and Feast use).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatTimestamp, TableSchema } from '../../src/engine/schema.js';
import { defineTable } from '../../src/engine/table-def.js';
import type { FeatureStatus } from '../../src/features/evaluator.js';
import { ViewEvaluator } from '../../src/features/evaluator.js';
import { renderMany, renderOne } from '../../src/http/features-json.js';
import { JsonBytes } from '../../src/http/json-bytes.js';
import type { EntityEval, Plan } from '../../src/online/service.js';
import { toObjects } from '../../src/online/service.js';
import { entityEval, PlanEvaluation } from '../../src/online/evaluation.js';

const COLUMNS = [
  ['id', 'string'],
  ['f', 'float64'],
  ['g', 'float32'],
  ['i', 'int32'],
  ['n', 'int64'],
  ['s', 'string'],
  ['b', 'bool'],
  ['t', 'timestamp'],
  ['j', 'json'],
  ['l', 'list<string>'],
  ['st', 'struct<a:int64,when:timestamp>'],
  ['v', 'vector<3>'],
] as const;

const schema = new TableSchema(defineTable('src', { kind: 'pk', primaryKey: ['id'], columns: COLUMNS.map(([name, type]) => ({ name, type, nullable: name !== 'id' })) }, undefined, 0).def);
const ev = new ViewEvaluator({ name: 'v', source: 'src', entity: 'id', features: COLUMNS.slice(1).map(([name]) => ({ name, column: name })), version: 1, createdAt: 0, updatedAt: 0 }, schema);

/** Candidate canonical values per column, including nulls and awkward ones. */
const VALUES: Record<string, unknown[]> = {
  f: [0, -0.5, 1e21, 1.7976931348623157e308, 5e-324, 123.456, null],
  g: [0.25, -3, null],
  i: [0, -2147483648, 2147483647, null],
  n: [0, -9007199254740991, '9223372036854775807', '-42000000000000000000'.slice(0, 19), null],
  s: ['', 'plain', 'a\\b', 'quote " backslash \\ newline \n tab \t', 'héllo ✓ 𝄞', '\u0000\u001f\u2028', null],
  b: [true, false, null],
  t: [0, 1767225600123, 951782400000, 253402300799999, null],
  j: [{ a: [1, 'x', null] }, 'text', 3, [], null],
  l: [['a', null, 'ü'], [], null],
  st: [{ a: 5, when: 1767225600123 }, { a: null, when: null }, null],
  v: [[0.5, -1, 3], null],
};
const STATUSES: FeatureStatus[] = ['PRESENT', 'NOT_FOUND', 'NULL_VALUE', 'OUTSIDE_MAX_AGE'];
const ENTITIES: unknown[] = ['e1', 42, 'ключ "q"', true, null, { composite: 1 }];

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => (s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32;
}

/**
 * An evaluation of `entities` by a plan of the chosen features, split at
 * random into one to three view groups (as a plan over several views is),
 * each entity's values drawn by `value`.
 */
function evaluation(r: () => number, chosen: { f: ViewEvaluator['features'][number]; index: number }[], entities: unknown[], value: (name: string) => unknown, status: () => FeatureStatus, time: () => number | null): PlanEvaluation {
  const ng = 1 + Math.floor(r() * Math.min(3, chosen.length));
  const groups = Array.from({ length: ng }, () => ({ def: ev.view, ev, ns: 'v@1', entityColumn: schema.byName.get('id')!, positions: [] as number[], indexes: [] as number[], absent: undefined as unknown as EntityEval }));
  chosen.forEach(({ index }, pos) => {
    const g = groups[pos < ng ? pos : Math.floor(r() * ng)];
    g.positions.push(pos);
    g.indexes.push(index);
  });
  const plan: Plan = {
    selection: {},
    features: chosen.map(({ f, index }) => ({ ref: `v:${f.name}`, view: 'v', feature: f.name, index, type: f.type })),
    groups,
    evaluators: chosen.map(() => ev),
    revision: 0,
  };
  const out = new PlanEvaluation(plan, 0, entities.length);
  out.token.src = Math.floor(r() * 1000) - 1;
  const nv = ev.features.length;
  for (let e = 0; e < entities.length; e++) {
    for (let gi = 0; gi < ng; gi++) {
      const values = new Array<unknown>(nv).fill(null);
      const statuses = new Array<FeatureStatus>(nv).fill('NOT_FOUND');
      const eventTimes = new Array<number | null>(nv).fill(null);
      for (const i of groups[gi].indexes) {
        values[i] = value(ev.features[i].name);
        statuses[i] = status();
        eventTimes[i] = time();
      }
      out.entries[e * ng + gi] = entityEval({ values, statuses, eventTimes }, 0, 0);
    }
  }
  return out;
}

test('rendered JSON text equals JSON.stringify of the objects, for every type, status, event-time pattern and split into views', () => {
  const r = rng(7);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];
  for (let round = 0; round < 300; round++) {
    // A random selection: some features, in any order.
    const chosen = ev.features.map((f, index) => ({ f, index })).filter(() => r() < 0.7);
    if (!chosen.length) continue;
    chosen.sort(() => r() - 0.5);
    const entities = Array.from({ length: 1 + Math.floor(r() * 3) }, () => pick(ENTITIES));
    const shared = r() < 0.5 ? pick([null, 1767225600000, 1767225600001]) : undefined;
    const e = evaluation(
      r,
      chosen,
      entities,
      (name) => pick(VALUES[name]),
      () => (r() < 0.6 ? 'PRESENT' : pick(STATUSES)),
      () => (shared !== undefined ? shared : pick([null, 0, 1767225600000, 1767225600999])),
    );
    const objects = toObjects(entities, e);
    assert.equal(renderMany(entities, e).bytes.toString('utf8'), JSON.stringify({ results: objects }), `round ${round}`);
    assert.equal(renderOne(entities[0], e).bytes.toString('utf8'), JSON.stringify(objects[0]), `round ${round}, one entity`);
  }
});

test('a kept entity part (the lookup cache holds the evaluation) renders the same JSON on every later lookup, for every kind of entity key', () => {
  const r = rng(11);
  for (let round = 0; round < 100; round++) {
    const chosen = ev.features.map((f, index) => ({ f, index })).filter(() => r() < 0.7);
    if (!chosen.length) continue;
    for (const entity of ENTITIES) {
      const e = evaluation(r, chosen, [entity], (name) => VALUES[name][Math.floor(r() * VALUES[name].length)], () => 'PRESENT', () => 1767225600000);
      if (e.plan.groups.length !== 1) continue;
      e.entries[0].kept = true;
      const expected = JSON.stringify(toObjects([entity], e)[0]);
      // The first render encodes and keeps the entity's part; the later ones copy it.
      for (let n = 0; n < 3; n++) assert.equal(renderOne(entity, e).bytes.toString('utf8'), expected, `round ${round}, ${JSON.stringify(entity)}, render ${n}`);
    }
  }
});

test('numbers are written as JSON.stringify writes them (short decimals digit by digit, the rest as JavaScript prints them)', () => {
  const r = rng(11);
  const f = ev.features.findIndex((x) => x.name === 'f');
  const draw = (): number => {
    const sign = r() < 0.3 ? -1 : 1;
    const mag = 10 ** Math.floor(r() * 40 - 20);
    switch (Math.floor(r() * 5)) {
      case 0: // a short decimal: an integer scaled down by up to 8 places
        return (sign * Math.round(r() * 10 ** Math.floor(r() * 17))) / 10 ** Math.floor(r() * 9);
      case 1: // a full-precision double of any magnitude
        return sign * r() * mag;
      case 2: // an integer near or beyond 2^53
        return sign * Math.floor(r() * 2 ** (40 + Math.floor(r() * 30)));
      case 3: // sums that print long (0.1 + 0.2)
        return sign * (Math.round(r() * 1000) / 10 + Math.round(r() * 1000) / 100);
      default:
        return pick([0, -0, 1e-6, 1e-7, 0.000001234, 4.35, 1.005, 2 ** 51 + 0.5, 2 ** 51 - 0.25, 999999.9999995, 1e20, 1e21, 123456789012.345, 5e-324, Number.MAX_VALUE, 2 ** 31 - 1, 2 ** 31, -(2 ** 31), 2 ** 31 - 0.5, 2147483647.000001, 0.05, 0.5, 10.01, 99, 100.1, 1000000.000001, 9.000009]);
    }
  };
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];
  for (let round = 0; round < 200; round++) {
    const entities = Array.from({ length: 100 }, () => draw());
    const e = evaluation(r, [{ f: ev.features[f], index: f }], entities, () => draw(), () => 'PRESENT', () => null);
    assert.equal(renderMany(entities, e).bytes.toString('utf8'), JSON.stringify({ results: toObjects(entities, e) }), `round ${round}`);
  }
});

test('times are written as JSON.stringify writes what Date#toISOString writes', () => {
  const r = rng(3);
  const cases = [0, 1, 999, 1000, 59_999, 86_399_999, 86_400_000, 951_782_400_000, 1_767_225_599_999, 253_402_300_799_999, -1, 253_402_300_800_000];
  for (let k = 0; k < 20_000; k++) cases.push(Math.floor(r() * 4_102_444_800_000));
  for (const ms of cases) {
    const out = new JsonBytes();
    out.time(ms);
    assert.equal(out.finish().bytes.toString('utf8'), JSON.stringify(formatTimestamp(ms)), String(ms));
  }
});

test('strings are written as JSON.stringify writes them, for every kind of UTF-16 code unit (escapes, 1 to 4 UTF-8 bytes, surrogate pairs, lone surrogates)', () => {
  const r = rng(5);
  const units = [0x00, 0x1f, 0x20, 0x22, 0x5c, 0x41, 0x7e, 0x7f, 0x80, 0xe9, 0x7ff, 0x800, 0x2028, 0x2713, 0xd7ff, 0xe000, 0xfffd, 0xffff, 0xd800, 0xdbff, 0xdc00, 0xdfff];
  const pairs = ['\ud834\udd1e', '\ud83d\ude00', '\udbff\udfff', '\ud800\udc00'];
  for (let round = 0; round < 20_000; round++) {
    let s = '';
    const n = Math.floor(r() * 8);
    for (let k = 0; k < n; k++) s += r() < 0.2 ? pairs[Math.floor(r() * pairs.length)] : String.fromCharCode(units[Math.floor(r() * units.length)]);
    const out = new JsonBytes();
    out.string(s);
    assert.deepEqual(out.finish().bytes, Buffer.from(JSON.stringify(s)), JSON.stringify(s));
  }
});

test('a plan of many features with long names (its feature keys written by more than one compiled function) renders as JSON.stringify does', () => {
  const names = Array.from({ length: 400 }, (_, i) => `feature ${i} "quoted" \\ ünïcødé ✓ 𝄞 ${'x'.repeat(i % 50)}`);
  const wide = new TableSchema(defineTable('w', { kind: 'pk', primaryKey: ['id'], columns: [{ name: 'id', type: 'string', nullable: false }, { name: 'x', type: 'float64', nullable: true }] }, undefined, 0).def);
  const wev = new ViewEvaluator({ name: 'w', source: 'w', entity: 'id', features: names.map((name) => ({ name, column: 'x' })), version: 1, createdAt: 0, updatedAt: 0 }, wide);
  const positions = names.map((_, i) => i);
  const plan: Plan = {
    selection: {},
    features: names.map((name, index) => ({ ref: `w:${name}`, view: 'w', feature: name, index, type: wev.features[index].type })),
    groups: [{ def: wev.view, ev: wev, ns: 'w@1', entityColumn: wide.byName.get('id')!, positions, indexes: positions, absent: undefined as unknown as EntityEval }],
    evaluators: names.map(() => wev),
    revision: 0,
  };
  const entities = ['a', 'b', 'c'];
  const e = new PlanEvaluation(plan, 0, entities.length);
  e.token.w = 5;
  entities.forEach((_, k) => {
    e.entries[k] = entityEval({ values: names.map((_, i) => (i + k) % 7 === 0 ? null : i / 8 + k), statuses: names.map((_, i) => ((i + k) % 7 === 0 ? 'NULL_VALUE' : 'PRESENT')), eventTimes: names.map(() => 1767225600000 + k) }, 0, 0);
  });
  assert.ok(Buffer.byteLength(names.map((n) => JSON.stringify(`w:${n}`)).join()) > 3 * 4096, 'the keys span several compiled functions');
  assert.equal(renderMany(entities, e).bytes.toString('utf8'), JSON.stringify({ results: toObjects(entities, e) }));
  assert.equal(renderOne('b', e).bytes.toString('utf8'), JSON.stringify(toObjects(['b'], e)[0]));
});

test('answers far larger than the writer\'s first buffer (long strings and JSON anywhere, so it grows between and inside runs of keys) render as JSON.stringify does', () => {
  const r = rng(13);
  const long = (name: string): unknown => {
    const v = VALUES[name][Math.floor(r() * VALUES[name].length)];
    if (r() < 0.1 && name === 's') return 'é'.repeat(Math.floor(r() * 6000));
    if (r() < 0.05 && name === 'j') return { text: 'x'.repeat(Math.floor(r() * 9000)) };
    return v;
  };
  for (let round = 0; round < 6; round++) {
    const chosen = ev.features.map((f, index) => ({ f, index })).filter(() => r() < 0.8);
    if (!chosen.length) continue;
    const entities = Array.from({ length: 1500 }, (_, i) => `entity-${round}-${i}`);
    const e = evaluation(r, chosen, entities, long, () => (r() < 0.8 ? 'PRESENT' : 'NULL_VALUE'), () => 1767225600000);
    const expected = JSON.stringify({ results: toObjects(entities, e) });
    assert.ok(Buffer.byteLength(expected) > 1024 * 1024, `round ${round}: the answer outgrows the 256 kB buffer`);
    const answer = renderMany(entities, e);
    assert.equal(answer.bytes.toString('utf8'), expected, `round ${round}`);
    answer.release?.();
  }
});

test('a pk row\'s evaluation marks itself uniform (every feature PRESENT at one time) exactly when it is, and renders the same either way', () => {
  const r = rng(17);
  let uniform = 0;
  for (let round = 0; round < 400; round++) {
    // A row's canonical values, with a null now and then.
    const values = ev.readNames.map((name) => {
      const vs = VALUES[name].filter((v) => v !== null);
      return r() < 0.05 ? null : vs[Math.floor(r() * vs.length)];
    });
    const commit = 1767225600000 + round;
    const evaluated = ev.evaluate(ev.rowState(round, commit, values), commit + 10);
    if (evaluated.uniform !== undefined) {
      uniform++;
      assert.ok(evaluated.statuses.every((s) => s === 'PRESENT'), `round ${round}: uniform with a status not PRESENT`);
      assert.ok(evaluated.eventTimes.every((t) => t === evaluated.uniform), `round ${round}: uniform with another event time`);
    } else assert.ok(evaluated.statuses.some((s) => s !== 'PRESENT') || new Set(evaluated.eventTimes).size > 1, `round ${round}: uniform not set where it holds`);
    // Rendered as one view's entry, for a random selection of its features.
    const chosen = ev.features.map((f, index) => ({ f, index })).filter(() => r() < 0.6);
    if (!chosen.length) continue;
    const plan: Plan = {
      selection: {},
      features: chosen.map(({ f, index }) => ({ ref: `v:${f.name}`, view: 'v', feature: f.name, index, type: f.type })),
      groups: [{ def: ev.view, ev, ns: 'v@1', entityColumn: schema.byName.get('id')!, positions: chosen.map((_, i) => i), indexes: chosen.map((c) => c.index), absent: undefined as unknown as EntityEval }],
      evaluators: chosen.map(() => ev),
      revision: 0,
    };
    const e = new PlanEvaluation(plan, commit + 10, 1);
    e.token.src = round;
    e.entries[0] = entityEval(evaluated, commit + 10, Infinity);
    assert.equal(renderOne('k', e).bytes.toString('utf8'), JSON.stringify(toObjects(['k'], e)[0]), `round ${round}`);
  }
  assert.ok(uniform > 100 && uniform < 400, `both kinds of rows were drawn (${uniform} uniform)`);
});
