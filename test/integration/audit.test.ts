/**
 * Decision audit through the REST routes: the Fluss example (user 123's risk
 * context), decisions posted and recorded by lookups, idempotency, listing,
 * entity state at any time, restart, reserved names, and the hash chain
 * (verify, and tampering by someone who fixes CRC-32s and then the chain).
 * Expected values are written out by hand from the example, not computed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { chainHash } from '../../src/engine/log.js';
import { ok, tempDir, testAsof, type TestAsof } from '../helpers.js';

const RISK = {
  kind: 'pk',
  primaryKey: ['user_id'],
  columns: [
    { name: 'user_id', type: 'int64', nullable: false },
    { name: 'risk_score', type: 'float64', nullable: true },
    { name: 'velocity_10m', type: 'int64', nullable: true },
    { name: 'total_spend_24h', type: 'float64', nullable: true },
  ],
};
const VIEW = { source: 'user_risk', entity: 'user_id', features: [{ name: 'risk_score', column: 'risk_score' }, { name: 'velocity_10m', column: 'velocity_10m' }, { name: 'total_spend_24h', column: 'total_spend_24h' }] };
const STATES = [
  { user_id: 123, risk_score: 0.12, velocity_10m: 1, total_spend_24h: 35 },
  { user_id: 123, risk_score: 0.47, velocity_10m: 5, total_spend_24h: 120 },
  { user_id: 123, risk_score: 0.83, velocity_10m: 9, total_spend_24h: 240 },
];
const iso = (ms: number): string => new Date(ms).toISOString();

/** The Fluss example up to the decision: two updates, a recorded lookup at t=2500, then the third update at t=3000. */
async function flussExample(asof: TestAsof, clock: { t: number }): Promise<void> {
  await ok(asof.req('PUT', '/tables/user_risk', RISK), 201);
  await ok(asof.req('PUT', '/feature-views/risk', VIEW), 201);
  clock.t = 1000;
  await ok(asof.req('POST', '/tables/user_risk/rows', { rows: [STATES[0]] }));
  clock.t = 2000;
  await ok(asof.req('POST', '/tables/user_risk/rows', { rows: [STATES[1]] }));
  clock.t = 2500;
  const served = await ok(asof.req('GET', '/features/123?view=risk&decision=loan-1'));
  assert.deepEqual(served.features, { 'risk:risk_score': 0.47, 'risk:velocity_10m': 5, 'risk:total_spend_24h': 120 });
  clock.t = 3000;
  await ok(asof.req('POST', '/tables/user_risk/rows', { rows: [STATES[2]] }));
}

function checkFlussAudit(a: any): void {
  assert.deepEqual(a.reconstructed.features, { 'risk:risk_score': 0.47, 'risk:velocity_10m': 5, 'risk:total_spend_24h': 120 });
  assert.equal(a.match, true);
  assert.deepEqual(a.differences, []);
  assert.deepEqual(a.reconstructed.token, { user_risk: 2 });
  assert.deepEqual(
    a.trail.map((r: any) => [r.changeType, r.offset, r.commitTime, r.row, r.changed]),
    [
      ['+I', 0, iso(1000), STATES[0], ['risk:risk_score', 'risk:velocity_10m', 'risk:total_spend_24h']],
      ['-U', 1, iso(2000), STATES[0], []],
      ['+U', 2, iso(2000), STATES[1], ['risk:risk_score', 'risk:velocity_10m', 'risk:total_spend_24h']],
    ],
  );
}

test('the Fluss example: a decision between the second and third update replays the second state, match true, trail +I -U +U', async () => {
  const clock = { t: 0 };
  const dir = await tempDir();
  let asof = await testAsof({}, { now: () => clock.t, dataDir: dir.path });
  try {
    await flussExample(asof, clock);
    const a = await ok(asof.req('GET', '/audit/decisions/loan-1'));
    checkFlussAudit(a);
    assert.equal(a.decision.recordedBy, 'lookup');
    assert.equal(a.decision.servedAt, iso(2500));
    assert.equal(a.history.ok, true);
    assert.deepEqual(Object.keys(a.history.tables), ['user_risk']);
    // The entity today is the third state; at 1500 it was the first.
    const nowState = await ok(asof.req('GET', '/audit/entities/123?view=risk'));
    assert.deepEqual(nowState.features, { 'risk:risk_score': 0.83, 'risk:velocity_10m': 9, 'risk:total_spend_24h': 240 });
    assert.deepEqual(nowState.trail.map((r: any) => r.changeType), ['+I', '-U', '+U', '-U', '+U']);
    const early = await ok(asof.req('GET', `/audit/entities/123?features=risk:velocity_10m&at=${iso(1500)}`));
    assert.deepEqual([early.features, early.trail.length], [{ 'risk:velocity_10m': 1 }, 1]);
    // Paginated trail.
    const page = await ok(asof.req('GET', '/audit/decisions/loan-1?trailFrom=1&trailLimit=1'));
    assert.deepEqual([page.trail.map((r: any) => r.changeType), page.trailPage], [['-U'], { from: 1, total: 3, next: 2 }]);
    const last = await ok(asof.req('GET', '/audit/decisions/loan-1?trailFrom=2'));
    assert.deepEqual([last.trail.map((r: any) => [r.changeType, r.changed]), last.trailPage], [[['+U', ['risk:risk_score', 'risk:velocity_10m', 'risk:total_spend_24h']]], { from: 2, total: 3, next: null }], 'a later page knows what the records before it set');

    // Completing the recorded lookup with its outcome; identical re-send is a no-op; another body is 409.
    const done = await ok(asof.req('POST', '/decisions', { id: 'loan-1', entity: 123, view: 'risk', outcome: 'approve', model: 'm1' }));
    assert.deepEqual([done.outcome, done.recordedBy, done.token], ['approve', 'lookup+api', { user_risk: 2 }]);
    const before = (await asof.req('GET', '/tables/user_risk')).body;
    const decisionsBefore = (await ok(asof.req('GET', '/tables/_asof_decisions'))).latestOffset;
    await ok(asof.req('POST', '/decisions', { id: 'loan-1', entity: 123, view: 'risk', model: 'm1', outcome: 'approve' }));
    assert.equal((await ok(asof.req('GET', '/tables/_asof_decisions'))).latestOffset, decisionsBefore, 'an identical re-send writes nothing');
    const c = await asof.req('POST', '/decisions', { id: 'loan-1', entity: 123, view: 'risk', outcome: 'deny' });
    assert.deepEqual([c.status, c.body.error.code], [409, 'ASOF_CONFLICT']);
    const c2 = await asof.req('GET', '/features/124?view=risk&decision=loan-1');
    assert.deepEqual([c2.status, c2.body.error.code], [409, 'ASOF_CONFLICT']);
    assert.equal((await ok(asof.req('GET', '/tables/user_risk'))).latestOffset, before.latestOffset);

    // A decision posted without a token replays what the store knew at decidedAt.
    await ok(asof.req('POST', '/decisions', { id: 'loan-2', entity: '123', features: ['risk:risk_score'], outcome: 'review', decidedAt: iso(2200), served: { features: { 'risk:risk_score': 0.12 } } }), 201);
    const a2 = await ok(asof.req('GET', '/audit/decisions/loan-2'));
    assert.deepEqual([a2.reconstructed.features, a2.reconstructed.pointInTime, a2.match], [{ 'risk:risk_score': 0.47 }, 'known', false]);
    assert.deepEqual(a2.differences, [{ feature: 'risk:risk_score', served: { value: 0.12 }, reconstructed: { value: 0.47, status: 'PRESENT', eventTime: iso(2000) } }]);
    clock.t = 4000;
    await ok(asof.req('POST', '/decisions', { id: 'other', entity: 7, view: 'risk', outcome: 'approve' }), 201);
    const list = await ok(asof.req('GET', '/audit/decisions?entity=123'));
    assert.deepEqual(list.decisions.map((d: any) => d.id), ['loan-1', 'loan-2'], 'newest first');
    assert.deepEqual((await ok(asof.req('GET', '/audit/decisions?outcome=approve'))).decisions.map((d: any) => d.id), ['other', 'loan-1']);
    assert.deepEqual((await ok(asof.req('GET', `/audit/decisions?from=${iso(2300)}&to=${iso(3000)}`))).decisions.map((d: any) => d.id), ['loan-1']);

    // Bad input writes nothing and names the field.
    const bad = await asof.req('POST', '/decisions', { id: 'has space', entity: 1, view: 'risk', outcome: 'x' });
    assert.deepEqual([bad.status, bad.body.error.details[0].field], [400, 'body.id']);
    assert.equal((await asof.req('GET', '/audit/decisions/nope')).status, 404);
    const dup = await asof.req('POST', '/features', { entities: [1, 2], view: 'risk', decisions: ['x1', 'x1'] });
    assert.deepEqual([dup.status, dup.body.error.code], [400, 'ASOF_INVALID_ARGUMENT']);
    assert.equal((await asof.req('GET', '/audit/decisions/x1')).status, 404);

    // Batch lookups record per entity.
    const batch = await ok(asof.req('POST', '/features', { entities: [123, 7], view: 'risk', decisions: ['b-123', null] }));
    assert.equal(batch.results.length, 2);
    const b = await ok(asof.req('GET', '/audit/decisions/b-123'));
    assert.deepEqual([b.match, b.reconstructed.features['risk:risk_score']], [true, 0.83]);

    // Reserved names.
    assert.equal((await asof.req('PUT', '/tables/_asof_mine', RISK)).status, 400);
    const forged = await asof.req('POST', '/tables/_asof_decisions/rows', { rows: [{ id: 'f', entity: '1', decidedAt: 0, decision: {} }] });
    assert.deepEqual([forged.status, forged.body.error.code], [403, 'ASOF_PERMISSION_DENIED']);

    // After a restart the decision replays the same.
    await asof.close();
    asof = await testAsof({}, { now: () => clock.t, dataDir: dir.path });
    checkFlussAudit(await ok(asof.req('GET', '/audit/decisions/loan-1')));
  } finally {
    await asof.close();
    await dir.cleanup();
  }
});

test('decision times are RFC 3339 UTC with milliseconds in every answer that carries a decision; input takes RFC 3339 or epoch ms as before', async () => {
  const clock = { t: 0 };
  const asof = await testAsof({}, { now: () => clock.t });
  try {
    await flussExample(asof, clock);
    // A recorded lookup: served at 2,500 ms; completing it at 4,000 keeps its lookup's decidedAt unless one is posted.
    const recorded = await ok(asof.req('GET', '/audit/decisions/loan-1'));
    assert.deepEqual([recorded.decision.decidedAt, recorded.decision.servedAt], [iso(2500), iso(2500)]);
    clock.t = 4000;
    const done = await ok(asof.req('POST', '/decisions', { id: 'loan-1', entity: 123, view: 'risk', outcome: 'approve' }));
    assert.deepEqual([done.decidedAt, done.servedAt], [iso(2500), iso(2500)]);
    // Posted decisions made in 2020: decidedAt may not be later than the server's now.
    clock.t = Date.parse('2021-01-01T00:00:00Z');
    const posted = await ok(asof.req('POST', '/decisions', { id: 'ext-1', entity: 123, view: 'risk', outcome: 'approve', decidedAt: '2020-01-01T00:00:00Z' }), 201);
    assert.deepEqual([posted.decidedAt, posted.servedAt], ['2020-01-01T00:00:00.000Z', null]);
    assert.equal((await ok(asof.req('POST', '/decisions', { id: 'ext-1', entity: 123, view: 'risk', outcome: 'approve', decidedAt: '2020-01-01T00:00:00Z' }))).decidedAt, '2020-01-01T00:00:00.000Z', 'an identical re-send answers the same');
    const epoch = await ok(asof.req('POST', '/decisions', { id: 'ext-2', entity: 123, view: 'risk', outcome: 'deny', decidedAt: 1577836800123 }), 201);
    assert.equal(epoch.decidedAt, '2020-01-01T00:00:00.123Z', 'epoch ms in, RFC 3339 out');
    const a = await ok(asof.req('GET', '/audit/decisions/ext-1'));
    assert.deepEqual([a.decision.decidedAt, a.decision.servedAt, a.reconstructed.at], ['2020-01-01T00:00:00.000Z', null, '2020-01-01T00:00:00.000Z']);
    const list = await ok(asof.req('GET', '/audit/decisions?entity=123'));
    assert.deepEqual(list.decisions.map((d: any) => [d.id, d.decidedAt, d.servedAt]), [['ext-2', '2020-01-01T00:00:00.123Z', null], ['ext-1', '2020-01-01T00:00:00.000Z', null], ['loan-1', iso(2500), iso(2500)]]);
    // The list's from/to filters still compare times, whichever form they are given in.
    assert.deepEqual((await ok(asof.req('GET', '/audit/decisions?from=2019-12-31T00:00:00Z&to=1577836800000'))).decisions.map((d: any) => d.id), ['ext-1']);
  } finally {
    await asof.destroy();
  }
});

test('a posted token must name every source table of the features decided on: one that does not is 400 naming the missing tables, and records nothing', async () => {
  const clock = { t: 0 };
  const asof = await testAsof({}, { now: () => clock.t });
  try {
    await flussExample(asof, clock);
    await ok(asof.req('PUT', '/tables/trips', { kind: 'log', eventTime: 'at', columns: [{ name: 'user_id', type: 'int64', nullable: false }, { name: 'at', type: 'timestamp', nullable: false }] }), 201);
    await ok(asof.req('POST', '/tables/trips/rows', { rows: [{ user_id: 123, at: 1000 }, { user_id: 123, at: 1100 }] }));
    await ok(asof.req('PUT', '/feature-views/trips', { source: 'trips', entity: 'user_id', features: [{ name: 'n', agg: { fn: 'count', window: '1h' } }] }), 201);
    // The replay would read user_risk as of offset -1: nothing, every feature NOT_FOUND.
    const r = await asof.req('POST', '/decisions', { id: 'tok-1', entity: 123, view: 'risk', outcome: 'approve', token: { trips: 1 } });
    assert.deepEqual([r.status, r.body.error?.code], [400, 'ASOF_INVALID_ARGUMENT'], JSON.stringify(r.body));
    assert.deepEqual(r.body.error.details, [{ field: 'token', reason: 'no offset for "user_risk", the source table of risk:risk_score, risk:velocity_10m, risk:total_spend_24h' }]);
    assert.match(r.body.error.message, /user_risk/);
    assert.equal((await asof.req('GET', '/audit/decisions/tok-1')).status, 404, 'nothing was recorded');
    // Features of two sources: each one the token lacks is named.
    const two = await asof.req('POST', '/decisions', { id: 'tok-2', entity: 123, features: ['risk:risk_score', 'trips:n'], outcome: 'approve', token: {} });
    assert.deepEqual(two.body.error.details.map((d: any) => d.reason), ['no offset for "user_risk", the source table of risk:risk_score', 'no offset for "trips", the source table of trips:n']);
    // A token naming every source (and another table besides) is taken, and replays those positions.
    const fine = await ok(asof.req('POST', '/decisions', { id: 'tok-3', entity: 123, features: ['risk:risk_score'], outcome: 'approve', token: { user_risk: 0, trips: 1 } }), 201);
    assert.deepEqual(fine.token, { user_risk: 0, trips: 1 });
    assert.deepEqual((await ok(asof.req('GET', '/audit/decisions/tok-3'))).reconstructed.features, { 'risk:risk_score': 0.12 });
  } finally {
    await asof.destroy();
  }
});

/** Frame boundaries of a changelog file: [pos, end, firstOffset, count]. */
function frames(buf: Buffer): { pos: number; end: number; first: number; count: number }[] {
  const out = [];
  for (let pos = 0; pos + 40 <= buf.length; ) {
    const end = pos + 40 + buf.readUInt32LE(pos + 8);
    out.push({ pos, end, first: Number(buf.readBigInt64LE(pos + 16)), count: buf.readUInt32LE(pos + 24) });
    pos = end;
  }
  return out;
}

/** What an attacker does after editing a frame: recompute its CRC-32 (bytes 16..end). */
function fixCrc(buf: Buffer, f: { pos: number; end: number }): void {
  buf.writeUInt32LE(crc32(buf.subarray(f.pos + 40, f.end), crc32(buf.subarray(f.pos + 16, f.pos + 40))), f.pos + 12);
}

test('tampering: a value changed inside a frame with its CRC fixed is named by verify; a rewritten chain disagrees with the decisions\' heads', async () => {
  const clock = { t: 0 };
  const dir = await tempDir();
  let asof = await testAsof({}, { now: () => clock.t, dataDir: dir.path });
  try {
    await flussExample(asof, clock);
    const clean = await ok(asof.req('GET', '/audit/verify?table=user_risk'));
    assert.deepEqual([clean.ok, clean.checked, clean.head.offset, clean.firstBroken], [true, 3, 4, undefined]);
    await asof.close();

    const path = join(dir.path, 'tables', 'user_risk', 'changelog-00000000000000000000.log');
    const buf = await readFile(path);
    const fs = frames(buf);
    assert.deepEqual(fs.map((f) => [f.first, f.count]), [[0, 1], [1, 2], [3, 2]]);
    const recordedHash = buf.subarray(fs[1].pos + 40, fs[1].pos + 72).toString('hex');
    // 0.47 as a float64 inside the second frame (the -U/+U of the second update) becomes 0.99.
    const needle = Buffer.alloc(8);
    needle.writeDoubleLE(0.47);
    const at = buf.indexOf(needle, fs[1].pos);
    assert.ok(at > fs[1].pos && at < fs[1].end, 'the value is in the second frame');
    buf.writeDoubleLE(0.99, at);
    fixCrc(buf, fs[1]);
    await writeFile(path, buf);

    asof = await testAsof({}, { now: () => clock.t, dataDir: dir.path });
    const broken = await ok(asof.req('GET', '/audit/verify?table=user_risk'));
    assert.equal(broken.ok, false);
    assert.equal(broken.firstBroken.offset, 1, 'verify names the changed frame');
    assert.equal(broken.checked, 3, 'frames after it were walked too');
    assert.equal(broken.firstBroken.actual, buf.subarray(fs[1].pos + 40, fs[1].pos + 72).toString('hex'));
    // Later frames stay readable: the current state and a range after the break verify.
    assert.equal((await ok(asof.req('GET', '/features/123?view=risk'))).features['risk:risk_score'], 0.83);
    assert.equal((await ok(asof.req('GET', '/audit/verify?table=user_risk&from=3'))).ok, true);
    const a = await ok(asof.req('GET', '/audit/decisions/loan-1?verify=true'));
    assert.equal(a.match, false, 'the replay no longer equals what was served');
    assert.deepEqual(a.differences.map((d: any) => [d.feature, d.served.value, d.reconstructed.value]), [['risk:risk_score', 0.47, 0.99]]);
    assert.equal(a.history.tables.user_risk.ok, false, 'the deep check walks the chain');
    await asof.close();

    // The attacker rewrites the chain from the changed frame on (and each CRC): verify passes again...
    let prev: Buffer = buf.subarray(fs[0].pos + 40, fs[0].pos + 72);
    for (const f of fs.slice(1)) {
      const h = chainHash(prev, 'user_risk', { firstOffset: f.first, count: f.count, schemaVersion: buf.readUInt32LE(f.pos + 28), commitTime: buf.readDoubleLE(f.pos + 32) }, buf.subarray(f.pos + 72, f.end));
      h.copy(buf, f.pos + 40);
      fixCrc(buf, f);
      prev = h;
    }
    await writeFile(path, buf);
    asof = await testAsof({}, { now: () => clock.t, dataDir: dir.path });
    assert.equal((await ok(asof.req('GET', '/audit/verify?table=user_risk'))).ok, true);
    // ...but the head the decision stored no longer matches the table's.
    const after = await ok(asof.req('GET', '/audit/decisions/loan-1'));
    assert.equal(after.history.ok, false);
    assert.deepEqual(after.history.tables.user_risk, { offset: 2, recorded: recordedHash, current: buf.subarray(fs[1].pos + 40, fs[1].pos + 72).toString('hex'), ok: false });
    assert.notEqual(recordedHash, buf.subarray(fs[1].pos + 40, fs[1].pos + 72).toString('hex'));
  } finally {
    await asof.close();
    await dir.cleanup();
  }
});

test('with ASOF_AUDIT_SIGNING_KEY, verify answers and decisions carry Ed25519 signatures that check with the public key', async () => {
  const { generateKeyPairSync, verify, createPublicKey } = await import('node:crypto');
  const { privateKey } = generateKeyPairSync('ed25519');
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const clock = { t: 0 };
  const asof = await testAsof({ auditSigningKey: pem }, { now: () => clock.t });
  try {
    await flussExample(asof, clock);
    const v = await ok(asof.req('GET', '/audit/verify?table=user_risk'));
    assert.equal(v.signature.message, `asof.chain-head.v1\nuser_risk\n4\n${v.head.hash}`);
    assert.equal(verify(null, Buffer.from(v.signature.message), createPublicKey(v.signature.publicKey), Buffer.from(v.signature.value, 'base64')), true);
    assert.equal(verify(null, Buffer.from(v.signature.message.replace('\n4\n', '\n3\n')), createPublicKey(v.signature.publicKey), Buffer.from(v.signature.value, 'base64')), false);
    const a = await ok(asof.req('GET', '/audit/decisions/loan-1'));
    assert.equal(typeof a.decision.signature, 'string');
    assert.equal(a.signatureValid, true);
  } finally {
    await asof.destroy();
  }
});

test('scopes: a lookup that records a decision needs "decide"; the audit routes need "audit"', async () => {
  const asof = await testAsof({ apiKeys: 'reader:read,decider:read+decide,auditor:audit,admin:admin+write' } as never);
  const as = (key: string) => ({ authorization: `Bearer ${key}` });
  try {
    assert.equal((await asof.req('PUT', '/tables/user_risk', RISK, as('admin'))).status, 201);
    assert.equal((await asof.req('PUT', '/feature-views/risk', VIEW, as('admin'))).status, 201);
    assert.equal((await asof.req('GET', '/features/123?view=risk', undefined, as('reader'))).status, 200);
    const denied = await asof.req('GET', '/features/123?view=risk&decision=s-1', undefined, as('reader'));
    assert.deepEqual([denied.status, denied.body.error.code], [403, 'ASOF_PERMISSION_DENIED']);
    assert.equal((await asof.req('POST', '/features', { entities: [123], view: 'risk', decisions: ['s-2'] }, as('reader'))).status, 403);
    assert.equal((await asof.req('GET', '/audit/decisions/s-1', undefined, as('auditor'))).status, 404, 'nothing was recorded');
    assert.equal((await asof.req('GET', '/features/123?view=risk&decision=s-3', undefined, as('decider'))).status, 200);
    assert.equal((await asof.req('GET', '/audit/decisions/s-3', undefined, as('decider'))).status, 403);
    assert.equal((await asof.req('GET', '/audit/decisions/s-3', undefined, as('auditor'))).status, 200);
    assert.equal((await asof.req('GET', '/audit/verify?table=user_risk', undefined, as('reader'))).status, 403);
  } finally {
    await asof.destroy();
  }
});

test('verify: a from or to past the table\'s latest offset is a 400 naming it and the range, not a head at -1 (which a signing key would sign)', async () => {
  const clock = { t: 0 };
  const asof = await testAsof({}, { now: () => clock.t });
  try {
    await flussExample(asof, clock);
    // user_risk's latest offset is 4 (five records: +I, -U/+U, -U/+U).
    for (const [query, field] of [['from=5', 'from'], ['from=5000', 'from'], ['to=5', 'to'], ['from=2&to=9', 'to']] as const) {
      const r = await asof.req('GET', `/audit/verify?table=user_risk&${query}`);
      assert.equal(r.status, 400, `${query}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.error.code, 'ASOF_INVALID_ARGUMENT');
      assert.match(r.body.error.message, new RegExp(`^${field} is \\d+; table "user_risk" holds offsets 0 to 4`));
      assert.deepEqual(r.body.error.details, [{ field, reason: 'offset outside [0, 4]' }]);
    }
    // The edge of the range still verifies.
    const last = await ok(asof.req('GET', '/audit/verify?table=user_risk&from=4&to=4'));
    assert.deepEqual([last.ok, last.head.offset, last.checked], [true, 4, 1]);

    await ok(asof.req('PUT', '/tables/empty_t', { kind: 'log', eventTime: 'ts', columns: [{ name: 'ts', type: 'timestamp', nullable: false }] }), 201);
    const none = await asof.req('GET', '/audit/verify?table=empty_t&from=0');
    assert.equal(none.status, 400);
    assert.match(none.body.error.message, /^from is 0; table "empty_t" has no records yet/);
    // Without a range, an empty table's head is the genesis, as before.
    const whole = await ok(asof.req('GET', '/audit/verify?table=empty_t'));
    assert.deepEqual([whole.ok, whole.head.offset, whole.checked], [true, -1, 0]);
  } finally {
    await asof.destroy();
  }
});

test('verify: a frame damaged on disk while the table is open is named with reason "checksum"; a link that holds needs no CRC-32', async () => {
  const clock = { t: 0 };
  const dir = await tempDir();
  const asof = await testAsof({}, { now: () => clock.t, dataDir: dir.path });
  try {
    await flussExample(asof, clock);
    const path = join(dir.path, 'tables', 'user_risk', 'changelog-00000000000000000000.log');
    const clean = await readFile(path);
    const fs = frames(clean);
    // One payload byte of the second frame flipped, its CRC-32 left as it was (a disk error, not an attacker).
    const damaged = Buffer.from(clean);
    damaged[fs[1].end - 1] ^= 0xff;
    await writeFile(path, damaged);
    const broken = await ok(asof.req('GET', '/audit/verify?table=user_risk'));
    assert.deepEqual([broken.ok, broken.firstBroken.offset, broken.firstBroken.reason, broken.checked], [false, 1, 'checksum', 3]);
    // Only the stored CRC-32 changed: the SHA-256 link covers every byte the checksum does, and it holds.
    const crcOnly = Buffer.from(clean);
    crcOnly[fs[1].pos + 12] ^= 1;
    await writeFile(path, crcOnly);
    const linked = await ok(asof.req('GET', '/audit/verify?table=user_risk'));
    assert.deepEqual([linked.ok, linked.checked, linked.firstBroken], [true, 3, undefined]);
    await writeFile(path, clean);
  } finally {
    await asof.close();
    await dir.cleanup();
  }
});

test('verify over many read runs (the walk reuses its read buffers): clean, then a frame in a later run changed with its CRC fixed is named', async () => {
  const dir = await tempDir();
  let asof = await testAsof({}, { dataDir: dir.path });
  try {
    await ok(asof.req('PUT', '/tables/big', { kind: 'log', eventTime: 'at', columns: [{ name: 'k', type: 'string', nullable: false }, { name: 'pad', type: 'string', nullable: false }, { name: 'at', type: 'timestamp', nullable: false }] }), 201);
    // 40 frames of about 200 KB: 8 MB, several 1 MiB runs.
    for (let i = 0; i < 40; i++) await ok(asof.req('POST', '/tables/big/rows', { rows: Array.from({ length: 100 }, (_, j) => ({ k: `f${i}`, pad: String.fromCharCode(97 + ((i + j) % 26)).repeat(2000), at: 1_700_000_000_000 + i })) }));
    const clean = await ok(asof.req('GET', '/audit/verify?table=big'));
    assert.deepEqual([clean.ok, clean.checked, clean.head.offset, clean.firstBroken], [true, 40, 3999, undefined]);
    await asof.close();

    const path = join(dir.path, 'tables', 'big', 'changelog-00000000000000000000.log');
    const buf = await readFile(path);
    const fs = frames(buf);
    assert.equal(fs.length, 40);
    const target = fs[33];
    buf[target.end - 10] ^= 1;
    fixCrc(buf, target);
    await writeFile(path, buf);
    asof = await testAsof({}, { dataDir: dir.path });
    const broken = await ok(asof.req('GET', '/audit/verify?table=big'));
    assert.deepEqual([broken.ok, broken.checked, broken.firstBroken.offset, broken.firstBroken.reason], [false, 40, target.first, 'hash']);
  } finally {
    await asof.close();
    await dir.cleanup();
  }
});
