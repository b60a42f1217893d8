/**
 * The adapter parity table: each operation in every adapter's form (REST,
 * gRPC asof.v1, Feast REST and gRPC, where the adapter has the operation) and
 * the one answer or catalogue error every form must give. A rule that lives
 * in an adapter instead of a service shows up here as a form that differs.
 *
 * To add an operation: append an entry. Build its forms with `lookupForms`,
 * `writeForms` or `restForm` (world.ts, forms.ts), or write a `Form` by hand for a new
 * adapter call (turn its answer into the shape the other forms give, and its
 * error into an `Outcome` with the catalogue code). Forms of an adapter that
 * cannot express the operation are simply absent; an operation with a single
 * form still pins the answer until the other adapters gain it.
 */
import type { ErrorCode } from '../../src/errors.js';
import type { GrpcAsof } from '../integration/grpc-helpers.js';
import { call } from '../integration/grpc-helpers.js';
import { feastJson } from '../integration/wire-values.js';
import { arrowWriteForms, decimalIpc, docsIpc, protoMapIpc, followForms, insertReadBackForms, jsonTextReadBackForms, jsonTextWriteForms, keyedFollowForms, malformedLookupForms, resumeForms, servingInfoForms, writeForms } from './forms.js';
import { canonicalEntityLookupForms, conflictingLookupForms, decisionAuditForms, decisionTimesForms, entityStateForms, nextDecisionId, postedServedAuditForms, recordedLookupForms, repeatedLookupForms } from './decision-forms.js';
import { EVENTS, grpcError, GUARDED_DECISION, HELD, lookupForms, restError, restForm, vectorForms, type Form, type Target, type World } from './world.js';

export interface Operation {
  name: string;
  /** The server the forms are sent to (default the primary). */
  target?: Target;
  /** Form name → the call; each gets the target server and the world. */
  forms: Record<string, (asof: GrpcAsof, world: World) => Promise<import('./world.js').Outcome>>;
  expect: { error: ErrorCode } | { answer: unknown };
  /** Set while the operation cannot run yet: says what it waits for (the test is reported as todo). */
  pending?: string;
}

/** Each form looks up a view that did not exist when the replica last loaded the definitions. */
function withNewView(make: (view: string) => Record<string, Form>): Operation['forms'] {
  return Object.fromEntries(Object.keys(make('x')).map((name) => [name, async (asof: GrpcAsof, world: World) => make(await world.newView())[name](asof)]));
}

const only = (forms: Record<string, Form>, prefix: string) => Object.fromEntries(Object.entries(forms).filter(([n]) => n.startsWith(prefix)));

/** users a, b and an absent key zz, features u:score and u:name. */
const AB_ZZ = [
  [[1.5, 'PRESENT'], ['ann', 'PRESENT']],
  [[null, 'NULL_VALUE'], ['bob', 'PRESENT']],
  [[null, 'NOT_FOUND'], [null, 'NOT_FOUND']],
];
const without = (forms: Record<string, Form>, prefix: string) => Object.fromEntries(Object.entries(forms).filter(([n]) => !n.startsWith(prefix)));

/** Feast gRPC's lookup of u:score for one entity given as bytes_val (or, with `list`, as a bytes_list_val of those bytes): the score values it answers. */
const feastBytesKey = (bytes: number[], list = false): Record<string, Form> => ({
  async [`Feast gRPC GetOnlineFeatures ${list ? 'bytes_list_val' : 'bytes_val'}`](asof: GrpcAsof) {
    const value = list ? { bytes_list_val: { val: [Buffer.from(bytes)] } } : { bytes_val: Buffer.from(bytes) };
    const { res, err } = await call(asof.feast, 'GetOnlineFeatures', { features: { val: ['u:score'] }, entities: { id: { val: [value] } } });
    return err ? grpcError(err) : { answer: res.results[1].values.map(feastJson) };
  },
});

/** u:score of entity a, with Feast's request_context beside it (REST JSON and gRPC): accepted and ignored by both. */
const feastRequestContext: Record<string, Form> = {
  async 'Feast REST POST /get-online-features with request_context'(asof: GrpcAsof) {
    const r = await asof.req('POST', '/get-online-features', { features: ['u:score'], entities: { id: ['a'] }, request_context: { x: [1] } });
    return r.status === 200 ? { answer: r.body.results[1].values } : restError(r.status, r.body);
  },
  async 'Feast gRPC GetOnlineFeatures with request_context'(asof: GrpcAsof) {
    const { res, err } = await call(asof.feast, 'GetOnlineFeatures', { features: { val: ['u:score'] }, entities: { id: { val: [{ string_val: 'a' }] } }, request_context: { x: { val: [{ int64_val: 1 }] } } });
    return err ? grpcError(err) : { answer: res.results[1].values.map(feastJson) };
  },
};

/** Lookups of `n` entities in the forms that take many in one request (GET /features/{entity} takes one a request). */
const lookupOfMany = (n: number) => without(lookupForms({ key: 'id', entities: Array.from({ length: n }, (_, i) => `e${i}`), features: ['u:score'] }), 'REST GET');

const lookupAbZz = (view: string) => lookupForms({ key: 'id', entities: ['a', 'b', 'zz'], features: [`${view}:score`, `${view}:name`] });

export const OPERATIONS: Operation[] = [
  // Vector search (items a [1,0,0] x, b [0,1,0] y, c [0,0,2] x; metric l2, distances squared).
  { name: 'vector search with a filter and features', forms: vectorForms({ table: 'items', vector: [1, 0.5, 0], k: 2, filter: { cat: 'x' }, features: ['u:name'] }), expect: { answer: [['a', 0.25, 'x', ['ann', 'PRESENT']], ['c', 5.25, 'x', [null, 'NOT_FOUND']]] } },
  { name: 'vector search with another metric', forms: vectorForms({ table: 'items', vector: [0, 1, 0], k: 3, metric: 'dot' }), expect: { answer: [['b', -1, 'y'], ['a', 0, 'x'], ['c', 0, 'x']] } },
  { name: 'vector search: unknown table', forms: vectorForms({ table: 'nope', vector: [1, 0, 0], k: 1 }), expect: { error: 'ASOF_TABLE_NOT_FOUND' } },
  { name: 'vector search: wrong dimension', forms: vectorForms({ table: 'items', vector: [1, 0], k: 1 }), expect: { error: 'ASOF_INVALID_ARGUMENT' } },
  { name: 'vector search: a filter on an unknown column', forms: vectorForms({ table: 'items', vector: [1, 0, 0], k: 1, filter: { nope: 1 } }), expect: { error: 'ASOF_INVALID_ARGUMENT' } },
  { name: 'vector search: asOf before 0001-01-01T00:00:00Z', forms: vectorForms({ table: 'items', vector: [1, 0, 0], k: 1, asOf: -62_135_596_800_001 }), expect: { error: 'ASOF_INVALID_ARGUMENT' } },
  { name: 'vector search: features of a view whose entities the hits cannot be', forms: vectorForms({ table: 'items', vector: [1, 0, 0], k: 1, features: ['cn:c'] }), expect: { error: 'ASOF_INVALID_ARGUMENT' } },
  { name: 'vector search: not a vector column', forms: vectorForms({ table: 'items', column: 'cat', vector: [1, 0, 0], k: 1 }), expect: { error: 'ASOF_INVALID_ARGUMENT' } },

  // Lookups that succeed.
  { name: 'lookup: a row, a null value and a missing entity', forms: lookupAbZz('u'), expect: { answer: AB_ZZ } },
  { name: 'lookup by feature service', forms: lookupForms({ key: 'id', entities: ['b', 'zz'], service: 'svc' }), expect: { answer: [[['bob', 'PRESENT']], [[null, 'NOT_FOUND']]] } },
  // A count of an entity never seen: asof's answers say 0 (README: a count is never null), Feast's say null, as for any value not PRESENT.
  { name: 'lookup: a count of an entity never seen', forms: without(lookupForms({ key: 'id', entities: ['zz'], features: ['ev:n1h'] }), 'Feast'), expect: { answer: [[[0, 'NOT_FOUND']]] } },
  { name: 'Feast: a count of an entity never seen is null', forms: only(lookupForms({ key: 'id', entities: ['zz'], features: ['ev:n1h'] }), 'Feast'), expect: { answer: [[[null, 'NOT_FOUND']]] } },
  { name: 'lookup by view', forms: lookupForms({ key: 'id', entities: ['a'], view: 'u' }), expect: { answer: [AB_ZZ[0]] } },

  // Lookups that fail.
  { name: 'unknown feature view', forms: lookupForms({ key: 'id', entities: ['a'], features: ['nope:score'] }), expect: { error: 'ASOF_FEATURE_VIEW_NOT_FOUND' } },
  { name: 'unknown feature of a known view', forms: lookupForms({ key: 'id', entities: ['a'], features: ['u:nope'] }), expect: { error: 'ASOF_NOT_FOUND' } },
  { name: 'unknown feature service', forms: lookupForms({ key: 'id', entities: ['a'], service: 'nope' }), expect: { error: 'ASOF_FEATURE_SERVICE_NOT_FOUND' } },
  { name: 'a feature listed twice', forms: lookupForms({ key: 'id', entities: ['a'], features: ['u:score', 'u:name', 'u:score'] }), expect: { error: 'ASOF_INVALID_ARGUMENT' } },
  { name: 'malformed feature reference', forms: lookupForms({ key: 'id', entities: ['a'], features: ['u:score', 'score'] }), expect: { error: 'ASOF_INVALID_ARGUMENT' } },
  {
    name: 'Feast: an entity column no requested view is keyed by',
    forms: only(lookupForms({ key: 'user_id', entities: ['a'], features: ['u:score'] }), 'Feast'),
    expect: { error: 'ASOF_INVALID_ARGUMENT' },
  },
  // Feast answers the entity key column itself first, under its name: a feature answered under the same name is refused (asof's answers name features by reference).
  { name: 'lookup: a feature named like the entity key column', forms: without(lookupForms({ key: 'id', entities: ['a'], features: ['uk:id', 'uk:score'] }), 'Feast'), expect: { answer: [[['a', 'PRESENT'], [1.5, 'PRESENT']]] } },
  { name: 'Feast: a feature named like the entity key column', forms: only(lookupForms({ key: 'id', entities: ['a'], features: ['uk:id', 'uk:score'] }), 'Feast'), expect: { error: 'ASOF_INVALID_ARGUMENT' } },
  {
    name: 'Feast: a feature named like the entity key column, with full_feature_names',
    forms: only(lookupForms({ key: 'id', entities: ['a'], features: ['uk:id', 'uk:score'], fullFeatureNames: true }), 'Feast'),
    expect: { answer: [[['a', 'PRESENT'], [1.5, 'PRESENT']]] },
  },
  { name: 'lookup: no entities', forms: lookupOfMany(0), expect: { error: 'ASOF_INVALID_ARGUMENT' } },
  { name: 'lookup: 10,001 entities, one over the limit', forms: lookupOfMany(10_001), expect: { error: 'ASOF_INVALID_ARGUMENT' } },
  { name: 'Feast: a bytes_val entity key that is not UTF-8', forms: feastBytesKey([0xff]), expect: { error: 'ASOF_INVALID_ARGUMENT' } },
  { name: 'Feast: a bytes_val entity key in UTF-8 is its text', forms: feastBytesKey([0x61]), expect: { answer: [1.5] } },
  { name: 'Feast: a bytes_list_val item that is not UTF-8', forms: feastBytesKey([0xff], true), expect: { error: 'ASOF_INVALID_ARGUMENT' } },
  { name: 'missing key: the row of an absent key', forms: restForm('GET', '/tables/users/rows/zz'), expect: { error: 'ASOF_ROW_NOT_FOUND' } },
  // Request objects are strict: a key a route does not take is refused (protobuf messages have no such keys: those forms are absent).
  { name: 'Feast: request_context is accepted and ignored', forms: feastRequestContext, expect: { answer: [1.5] } },
  {
    name: 'lookup: a request key the route does not take',
    forms: {
      ...restForm('GET', '/features/a?features=u:score&feature=u:name'),
      ...restForm('POST', '/features', { entities: ['a'], features: ['u:score'], Decisions: ['d'] }),
      ...restForm('POST', '/get-online-features', { features: ['u:score'], entities: { id: ['a'] }, full_feature_name: true }),
    },
    expect: { error: 'ASOF_INVALID_ARGUMENT' },
  },
  { name: 'write: a body key the request does not take (a misspelled op)', forms: restForm('POST', '/tables/users/rows', { rows: [{ id: 'a' }], Op: 'delete' }), expect: { error: 'ASOF_INVALID_ARGUMENT' } },
  { name: 'changelog: a query parameter the route does not take', forms: restForm('GET', '/tables/users/changelog?frm=1'), expect: { error: 'ASOF_INVALID_ARGUMENT' } },

  // Writes.
  { name: 'write: deleting an absent key writes nothing', forms: writeForms('users', [{ id: 'gone' }], 'delete'), expect: { answer: { count: 0 } } },
  { name: 'write: a new row, read back', forms: insertReadBackForms({ score: 2.5, name: 'zed' }), expect: { answer: [{ count: 1 }, { score: 2.5, name: 'zed' }] } },
  { name: 'write: a table name that is not a name', forms: writeForms('a b', [{ id: 'a' }]), expect: { error: 'ASOF_INVALID_ARGUMENT' } },
  { name: 'write: an empty table name', forms: writeForms('', [{ id: 'a' }]), expect: { error: 'ASOF_INVALID_ARGUMENT' } },
  { name: 'write: unknown table', forms: writeForms('nope', [{ id: 'a' }]), expect: { error: 'ASOF_TABLE_NOT_FOUND' } },
  { name: 'bad rows: a string where a float64 goes', forms: writeForms('users', [{ id: 'c', score: 'high' }]), expect: { error: 'ASOF_INVALID_ROW' } },
  { name: 'bad rows: the primary key is missing', forms: writeForms('users', [{ id: 'c' }, { score: 2 }]), expect: { error: 'ASOF_INVALID_ROW' } },
  { name: 'bad rows: a column the table does not have', forms: writeForms('users', [{ id: 'c', colour: 'red' }]), expect: { error: 'ASOF_INVALID_ROW' } },
  // A delete names the key columns and nothing else: another name is refused, not ignored (the key is absent, so a delete that went through would answer count 0).
  { name: 'bad rows: a delete naming a column the table does not have', forms: writeForms('users', [{ id: 'gone', colour: 'junk' }], 'delete'), expect: { error: 'ASOF_INVALID_ROW' } },
  { name: 'bad rows: a delete naming a column that is not a key column', forms: writeForms('users', [{ id: 'gone', name: 'junk' }], 'delete'), expect: { error: 'ASOF_INVALID_ROW' } },
  // Timestamps are the instants of the years 0001-9999 (UTC): one millisecond past 9999, and a year-0001 time whose offset puts it in year 0000.
  { name: 'bad rows: a time after 9999-12-31T23:59:59.999Z', forms: writeForms('events', [{ id: 'e', at: 0 }, { id: 'e', at: 253_402_300_800_000 }]), expect: { error: 'ASOF_INVALID_ROW' } },
  { name: 'bad rows: a time before 0001-01-01T00:00:00Z', forms: writeForms('events', [{ id: 'e', at: '0001-01-01T00:00:00+01:00' }]), expect: { error: 'ASOF_INVALID_ROW' } },
  { name: 'bad rows: an integer beyond 2^53 inside a json value', forms: jsonTextWriteForms('docs', { id: 'd' }, 'j', '{"x":[12345678901234567890]}'), expect: { error: 'ASOF_INVALID_ROW' } },
  // JSON.parse reads it as 1700000000000: a whole millisecond where a fraction was sent.
  { name: 'bad rows: epoch ms a float64 reads as a whole number (1700000000000.00000001)', forms: jsonTextWriteForms('events', { id: 'e' }, 'at', '1700000000000.00000001'), expect: { error: 'ASOF_INVALID_ROW' } },
  { name: 'write: 2^53, 1e300 and 0.1 inside a json value, stored exactly', forms: jsonTextReadBackForms('[9007199254740992,1e300,0.1]'), expect: { answer: [{ count: 1 }, [9007199254740992, 1e300, 0.1]] } },
  { name: 'bad body: bytes that are not an Arrow IPC stream (an empty write before)', forms: arrowWriteForms('docs', Buffer.from('garbage')), expect: { error: 'ASOF_INVALID_ARGUMENT' } },
  { name: 'bad body: two Arrow IPC streams in one body (the second dropped before)', forms: arrowWriteForms('docs', Buffer.concat([docsIpc('s1'), docsIpc('s2')])), expect: { error: 'ASOF_INVALID_ARGUMENT' } },
  { name: 'bad rows: an Arrow Decimal', forms: arrowWriteForms('docs', decimalIpc()), expect: { error: 'ASOF_INVALID_ROW' } },
  { name: 'bad rows: an Arrow Map key __proto__', forms: arrowWriteForms('docs', protoMapIpc()), expect: { error: 'ASOF_INVALID_ROW' } },
  { name: 'write: the last instant of 9999', forms: writeForms('events', [{ id: 'e', at: 253_402_300_799_999 }]), expect: { answer: { count: 1 } } },

  // The changelog: a catch-up page over REST, a live follow over gRPC, the same records.
  {
    name: 'changelog: the first records from an offset',
    forms: followForms('users', 0, 2),
    expect: { answer: [[0, '+I', { id: 'a', score: 1.5, name: 'ann' }], [1, '+I', { id: 'b', score: null, name: 'bob' }]] },
  },
  { name: 'changelog: unknown table', forms: followForms('nope', 0, 1), expect: { error: 'ASOF_TABLE_NOT_FOUND' } },
  { name: "changelog: one key's records", forms: keyedFollowForms('users', { id: 'b' }, 1), expect: { answer: [[1, '+I', { id: 'b', score: null, name: 'bob' }]] } },
  { name: 'changelog: a key naming a column the table does not have', forms: keyedFollowForms('users', { id: 'b', zz: 1 }, 1), expect: { error: 'ASOF_INVALID_ARGUMENT' } },
  { name: 'changelog: a key naming a column that is not a key column', forms: keyedFollowForms('users', { id: 'b', name: 'bob' }, 1), expect: { error: 'ASOF_INVALID_ARGUMENT' } },
  { name: 'changelog: a follow resumed after the record it last received', forms: resumeForms('users', '0', 1), expect: { answer: [[1, '+I', { id: 'b', score: null, name: 'bob' }]] } },
  { name: 'changelog: a Last-Event-ID that is not an offset', forms: resumeForms('users', 'x', 1), expect: { error: 'ASOF_INVALID_ARGUMENT' } },
  { name: 'changelog: a table name that is not a name', forms: followForms('a b', 0, 1), expect: { error: 'ASOF_INVALID_ARGUMENT' } },
  { name: 'changelog: an empty table name', forms: followForms('', 0, 1), expect: { error: 'ASOF_INVALID_ARGUMENT' } },

  // A read replica: the primary's answers, and no writes whatever the adapter.
  { name: 'replica: a lookup answers what the primary wrote', target: 'replica', forms: lookupAbZz('u'), expect: { answer: AB_ZZ } },
  { name: 'replica: a view defined on the primary since the replica loaded definitions', target: 'replica', forms: withNewView(lookupAbZz), expect: { answer: AB_ZZ } },
  { name: 'replica: writing rows', target: 'replica', forms: writeForms('users', [{ id: 'c', score: 1 }]), expect: { error: 'ASOF_CONFLICT' } },
  { name: 'replica: writing rows to a table it was never told of', target: 'replica', forms: writeForms('nope', [{ id: 'c' }]), expect: { error: 'ASOF_CONFLICT' } },
  { name: 'replica: defining a table', target: 'replica', forms: restForm('PUT', '/tables/other', { kind: 'log', eventTime: 'at', columns: [{ name: 'at', type: 'timestamp', nullable: false }] }), expect: { error: 'ASOF_CONFLICT' } },
  { name: 'replica: defining a feature view', target: 'replica', forms: restForm('PUT', '/feature-views/v2', { source: 'users', entity: 'id', features: [{ name: 'score', column: 'score' }] }), expect: { error: 'ASOF_CONFLICT' } },

  // Primaries sharing a Redis prefix: a name another primary holds is refused, whatever defines it (REST only defines today).
  { name: 'shared Redis: defining a table whose name another primary holds', target: 'shared', forms: restForm('PUT', `/tables/${HELD.table}`, EVENTS), expect: { error: 'ASOF_CONFLICT' } },
  { name: 'shared Redis: defining a feature view whose name another primary holds', target: 'shared', forms: restForm('PUT', `/feature-views/${HELD.view}`, { source: 'users', entity: 'id', features: [{ name: 'score', column: 'score' }] }), expect: { error: 'ASOF_CONFLICT' } },

  // Decision audit: every lookup adapter records the same decision; REST and gRPC AuditService replay it the same.
  { name: 'decision recorded by the lookup itself', forms: recordedLookupForms(['u:score', 'u:name']), expect: { answer: [true, 'lookup', AB_ZZ[0]] } },
  {
    name: 'decision: a recorded lookup sent again answers what it answered the first time (values, statuses, token), not the row written since',
    forms: repeatedLookupForms(['u:score', 'u:name']),
    expect: { answer: [[[1, 'PRESENT'], ['x', 'PRESENT']], [[1, 'PRESENT'], ['x', 'PRESENT']], true] },
  },
  { name: 'decision: a lookup recorded over REST sent again over another adapter (same entity and features)', forms: conflictingLookupForms({}), expect: { answer: AB_ZZ[0] } },
  { name: 'decision: a lookup recorded for int64 entity "01001" sent again as "1001" over another adapter (the same canonical key)', forms: canonicalEntityLookupForms(), expect: { answer: [[2.5, 'PRESENT']] } },
  { name: 'decision: a recorded lookup\'s id sent with another entity', forms: conflictingLookupForms({ entity: 'b' }), expect: { error: 'ASOF_CONFLICT' } },
  { name: 'decision: a recorded lookup\'s id sent with other features', forms: conflictingLookupForms({ features: ['u:score'] }), expect: { error: 'ASOF_CONFLICT' } },
  {
    name: 'decision audit: replay of a recorded lookup',
    forms: decisionAuditForms(async (asof) => {
      const id = nextDecisionId('audit');
      await asof.req('GET', `/features/a?view=u&decision=${id}`);
      return id;
    }, ['u:score', 'u:name']),
    expect: { answer: [true, AB_ZZ[0], ['+I']] },
  },
  // A posted subset is compared as reported; an event time is an instant, whatever offset it was posted with.
  {
    name: 'decision audit: a posted subset, its event time with an offset',
    forms: postedServedAuditForms((l) => ({ features: { 'u:score': l.features['u:score'] }, eventTimes: { 'u:score': `${new Date(Date.parse(l.eventTimes['u:score']!) + 3_600_000).toISOString().slice(0, -1)}+01:00` } })),
    expect: { answer: [true, ['u:score'], [], true] },
  },
  {
    name: 'decision audit: a posted status alone is compared',
    forms: postedServedAuditForms((l) => ({ features: { 'u:score': l.features['u:score'] }, statuses: { 'u:name': 'NOT_FOUND' }, eventTimes: { 'u:score': Date.parse(l.eventTimes['u:score']!) } })),
    expect: { answer: [false, ['u:score', 'u:name'], ['u:name'], true] },
  },
  { name: 'decision audit: unknown decision', forms: decisionAuditForms(async () => 'no-such-decision', []), expect: { error: 'ASOF_NOT_FOUND' } },
  { name: 'audit: entity state with its trail', forms: entityStateForms('b', 'u', ['u:score', 'u:name']), expect: { answer: [AB_ZZ[1], ['+I']] } },
  { name: 'audit: entity state of an unknown view', forms: entityStateForms('b', 'nope', []), expect: { error: 'ASOF_FEATURE_VIEW_NOT_FOUND' } },
  { name: 'decision audit: a malformed decision id', forms: decisionAuditForms(async () => 'not an id', []), expect: { error: 'ASOF_INVALID_ARGUMENT' } },
  { name: 'decision audit: a trail page over 10,000 records', forms: decisionAuditForms(async () => 'no-such-decision', [], { trailLimit: 10_001 }), expect: { error: 'ASOF_INVALID_ARGUMENT' } },
  // trail_limit is a uint32 on the wire: -7 arrives as 4,294,967,289, over the 10,000 a page may hold.
  { name: 'audit: a negative trail page size', forms: entityStateForms('b', 'u', [], { trailLimit: -7 }), expect: { error: 'ASOF_INVALID_ARGUMENT' } },
  { name: 'audit: entity state at a time no date can hold', forms: entityStateForms('b', 'u', [], { at: 9e15 }), expect: { error: 'ASOF_INVALID_ARGUMENT' } },
  { name: 'decision: its times are RFC 3339 in every answer (posted as RFC 3339)', forms: decisionTimesForms('parity-times-rfc', '2020-01-01T00:00:00Z'), expect: { answer: ['2020-01-01T00:00:00.000Z', null] } },
  { name: 'decision: its times are RFC 3339 in every answer (posted as epoch ms)', forms: decisionTimesForms('parity-times-ms', 1577836800123), expect: { answer: ['2020-01-01T00:00:00.123Z', null] } },
  { name: 'audit: entity state at a time after 9999', forms: entityStateForms('b', 'u', [], { at: 253_402_300_800_000 }), expect: { error: 'ASOF_INVALID_ARGUMENT' } },
  { name: 'decision: a token offset the table has not reached', forms: restForm('POST', '/decisions', { id: 'parity-token-ahead', entity: 'a', view: 'u', outcome: 'ok', token: { users: 1_000_000 } }), expect: { error: 'ASOF_INVALID_ARGUMENT' } },
  { name: 'decision: a token that does not name the features\' source table', forms: restForm('POST', '/decisions', { id: 'parity-token-uncovered', entity: 'a', view: 'u', outcome: 'ok', token: { items: 0 } }), expect: { error: 'ASOF_INVALID_ARGUMENT' } },
  { name: 'decision: recording a lookup on a replica', target: 'replica', forms: recordedLookupForms(['u:score']), expect: { error: 'ASOF_CONFLICT' } },

  // Scoped API keys (the guarded server: pr read, pw write): the same answer or refusal over every adapter.
  { name: 'auth: a lookup with a read key', target: { key: 'pr' }, forms: lookupAbZz('u'), expect: { answer: AB_ZZ } },
  { name: 'auth: a lookup without a key', target: {}, forms: lookupAbZz('u'), expect: { error: 'ASOF_UNAUTHENTICATED' } },
  { name: 'auth: a lookup with a wrong key', target: { key: 'nope' }, forms: lookupAbZz('u'), expect: { error: 'ASOF_UNAUTHENTICATED' } },
  { name: 'auth: a lookup with a write-only key', target: { key: 'pw' }, forms: lookupAbZz('u'), expect: { error: 'ASOF_PERMISSION_DENIED' } },
  { name: 'auth: a write with a read-only key', target: { key: 'pr' }, forms: writeForms('users', [{ id: 'c', score: 1 }]), expect: { error: 'ASOF_PERMISSION_DENIED' } },
  { name: 'auth: a write without a key', target: {}, forms: writeForms('users', [{ id: 'c', score: 1 }]), expect: { error: 'ASOF_UNAUTHENTICATED' } },
  { name: 'auth: a write with a write key', target: { key: 'pw' }, forms: writeForms('users', [{ id: 'gone' }], 'delete'), expect: { answer: { count: 0 } } },

  { name: 'auth: a malformed request without a key', target: {}, forms: malformedLookupForms, expect: { error: 'ASOF_UNAUTHENTICATED' } },
  { name: 'auth: a malformed request with a read key', target: { key: 'pr' }, forms: malformedLookupForms, expect: { error: 'ASOF_INVALID_ARGUMENT' } },
  { name: 'auth: recording a decision with a read-only key', target: { key: 'pr' }, forms: { ...recordedLookupForms(['u:score']), ...restForm('POST', '/decisions', { id: 'parity-read-only', entity: 'a', view: 'u', outcome: 'ok' }) }, expect: { error: 'ASOF_PERMISSION_DENIED' } },
  ...(
    [
      ['audit', { ...decisionAuditForms(async () => 'no-such-decision', []), ...entityStateForms('b', 'u', []) }],
      ['vector search', vectorForms({ table: 'items', vector: [1, 0, 0], k: 1 })],
      ['changelog', followForms('users', 0, 1)],
      ['Feast serving info', servingInfoForms],
    ] as const
  ).flatMap(([what, forms]): Operation[] => [
    { name: `auth: ${what} without a key`, target: {}, forms, expect: { error: 'ASOF_UNAUTHENTICATED' } },
    // pr reads: audit needs the audit scope; pw only writes.
    { name: `auth: ${what} with a key of another scope`, target: { key: what === 'audit' ? 'pr' : 'pw' }, forms, expect: { error: 'ASOF_PERMISSION_DENIED' } },
  ]),

  // asof's internal tables (the decision log) are read with the audit scope, whatever the path that names them; read alone is refused.
  { name: 'decision log: its changelog with a read key', target: { key: 'pr' }, forms: followForms('_asof_decisions', 0, 1), expect: { error: 'ASOF_PERMISSION_DENIED' } },
  { name: 'decision log: its changelog with a read+audit key', target: { key: 'pu' }, forms: followForms('_asof_decisions', 0, 1, ['id', 'entity', 'outcome']), expect: { answer: [[0, '+I', { id: GUARDED_DECISION, entity: 'a', outcome: null }]] } },
  { name: 'decision log: a row with a read key', target: { key: 'pr' }, forms: restForm('GET', `/tables/_asof_decisions/rows/${GUARDED_DECISION}`), expect: { error: 'ASOF_PERMISSION_DENIED' } },
  { name: 'decision log: described with a read key', target: { key: 'pr' }, forms: restForm('GET', '/tables/_asof_decisions'), expect: { error: 'ASOF_PERMISSION_DENIED' } },
  { name: 'decision log: training-set entity rows with a read key', target: { key: 'pr' }, forms: restForm('POST', '/training-sets', { entities: { table: '_asof_decisions' }, features: ['u:score'] }), expect: { error: 'ASOF_PERMISSION_DENIED' } },
  { name: 'decision log: vector search with a read key', target: { key: 'pr' }, forms: vectorForms({ table: '_asof_decisions', vector: [1, 0, 0], k: 1 }), expect: { error: 'ASOF_PERMISSION_DENIED' } },
  { name: 'decision log: an internal name no table has, with a read key (refused before the lookup)', target: { key: 'pr' }, forms: followForms('_asof_nothing', 0, 1), expect: { error: 'ASOF_PERMISSION_DENIED' } },
  { name: 'decision log: an internal name no table has, with a read+audit key', target: { key: 'pu' }, forms: followForms('_asof_nothing', 0, 1), expect: { error: 'ASOF_TABLE_NOT_FOUND' } },

  // Overload (ASOF_OVERLOADED, 429 / RESOURCE_EXHAUSTED): the guarded server's one slot per kind is taken and it queues none.
  { name: 'overload: a lookup beyond the in-flight limit', target: { key: 'pr', busy: true }, forms: lookupAbZz('u'), expect: { error: 'ASOF_OVERLOADED' } },
  { name: 'overload: a vector search beyond the in-flight limit', target: { key: 'pr', busy: true }, forms: vectorForms({ table: 'items', vector: [1, 0, 0], k: 1 }), expect: { error: 'ASOF_OVERLOADED' } },
  { name: 'overload: a write beyond the in-flight limit', target: { key: 'pw', busy: true }, forms: writeForms('users', [{ id: 'c', score: 1 }]), expect: { error: 'ASOF_OVERLOADED' } },
];
