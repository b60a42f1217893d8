/**
 * More adapter forms for the parity table (world.ts has the lookup, audit and
 * vector ones): writes in every body form each adapter takes, following a
 * table's changelog, Feast's serving info, and request bytes that are not the
 * method's message.
 */
import http from 'node:http';
import * as A from 'apache-arrow';
import { call, grpc, stream, type GrpcAsof } from '../integration/grpc-helpers.js';
import { asofJson } from '../integration/wire-values.js';
import { nextDecisionId } from './decision-forms.js';
import { grpcError, restError, type Form, type Outcome } from './world.js';

/** asof.v1 Value of a JSON row value (the fixture's columns are strings and float64). */
function pbValue(v: unknown): object {
  if (v === null) return { null_value: 'NULL_VALUE' };
  if (typeof v === 'number') return { double_value: v };
  if (typeof v === 'boolean') return { bool_value: v };
  return { string_value: String(v) };
}

/**
 * Rows as an Arrow IPC stream, a column per name any row has: float64 when
 * every value given is a number, else utf8 (so a string where a float64 goes
 * stays a string); a row without the column holds null there.
 */
function arrowOf(rows: Record<string, unknown>[]): Buffer {
  const names = [...new Set(rows.flatMap((r) => Object.keys(r)))];
  const columns: Record<string, A.Vector> = {};
  for (const n of names) {
    const values = rows.map((r) => r[n] ?? null);
    const numeric = values.every((v) => v === null || typeof v === 'number');
    columns[n] = A.vectorFromArray(values, numeric ? new A.Float64() : new A.Utf8());
  }
  return Buffer.from(A.tableToIPC(new A.Table(columns), 'stream'));
}

const NDJSON = 'application/x-ndjson';
const ARROW = 'application/vnd.apache.arrow.stream';

/**
 * A write in each adapter's form and each body form it takes (REST JSON,
 * NDJSON and Arrow; gRPC WriteRows typed rows, ndjson and arrow_ipc); a
 * success answers {count}.
 */
export function writeForms(table: string, rows: Record<string, unknown>[], op: 'upsert' | 'delete' = 'upsert'): Record<string, Form> {
  const url = `/tables/${encodeURIComponent(table)}/rows`;
  const ndjson = rows.map((r) => JSON.stringify(r) + '\n').join('');
  const rest = async (asof: GrpcAsof, body: unknown, headers?: Record<string, string>): Promise<Outcome> => {
    const r = await asof.req('POST', headers ? `${url}?op=${op}` : url, body, headers);
    return r.status === 200 ? { answer: { count: r.body.count } } : restError(r.status, r.body);
  };
  const grpcWrite = async (asof: GrpcAsof, form: object): Promise<Outcome> => {
    const { res, err } = await stream(asof.ingest, 'WriteRows', [{ table, op: op === 'delete' ? 'DELETE' : 'UPSERT', ...form }]);
    return err ? grpcError(err) : { answer: { count: Number(res.count ?? 0) } };
  };
  return {
    'REST POST /tables/{table}/rows JSON': (asof) => rest(asof, { rows, op }),
    'REST POST /tables/{table}/rows NDJSON': (asof) => rest(asof, ndjson, { 'content-type': NDJSON }),
    'REST POST /tables/{table}/rows Arrow': (asof) => rest(asof, arrowOf(rows), { 'content-type': ARROW }),
    'gRPC asof.v1 WriteRows rows': (asof) => grpcWrite(asof, { rows: rows.map((r) => ({ columns: Object.fromEntries(Object.entries(r).map(([k, v]) => [k, pbValue(v)])) })) }),
    'gRPC asof.v1 WriteRows ndjson': (asof) => grpcWrite(asof, { ndjson }),
    'gRPC asof.v1 WriteRows arrow_ipc': (asof) => grpcWrite(asof, { arrow_ipc: arrowOf(rows) }),
  };
}

/**
 * A write of one row whose `jsonColumn` is given as JSON text (so a number can
 * be written as no JS value holds it), in each form that carries the text as
 * sent: REST JSON and NDJSON, gRPC WriteRows ndjson, and typed rows with the
 * text as a json_value; a success answers {count}.
 */
export function jsonTextWriteForms(table: string, row: Record<string, unknown>, jsonColumn: string, jsonText: string): Record<string, Form> {
  const rowText = `${JSON.stringify(row).slice(0, -1)},${JSON.stringify(jsonColumn)}:${jsonText}}`;
  const rest = async (asof: GrpcAsof, body: string, ct: string): Promise<Outcome> => {
    const r = await asof.req('POST', `/tables/${encodeURIComponent(table)}/rows`, body, { 'content-type': ct });
    return r.status === 200 ? { answer: { count: r.body.count } } : restError(r.status, r.body);
  };
  const grpcWrite = async (asof: GrpcAsof, form: object): Promise<Outcome> => {
    const { res, err } = await stream(asof.ingest, 'WriteRows', [{ table, ...form }]);
    return err ? grpcError(err) : { answer: { count: Number(res.count ?? 0) } };
  };
  const columns = { ...Object.fromEntries(Object.entries(row).map(([k, v]) => [k, pbValue(v)])), [jsonColumn]: { json_value: jsonText } };
  return {
    'REST POST /tables/{table}/rows JSON': (asof) => rest(asof, `{"rows":[${rowText}]}`, 'application/json'),
    'REST POST /tables/{table}/rows NDJSON': (asof) => rest(asof, rowText + '\n', NDJSON),
    'gRPC asof.v1 WriteRows rows': (asof) => grpcWrite(asof, { rows: [{ columns }] }),
    'gRPC asof.v1 WriteRows ndjson': (asof) => grpcWrite(asof, { ndjson: rowText + '\n' }),
  };
}

/** A new `docs` row whose `j` is `jsonText`, in each jsonTextWriteForms form, answered as [{count}, `j` as REST reads it back]. */
export function jsonTextReadBackForms(jsonText: string): Record<string, Form> {
  return Object.fromEntries(
    Object.keys(jsonTextWriteForms('docs', {}, 'j', jsonText)).map((name) => [
      name,
      async (asof: GrpcAsof): Promise<Outcome> => {
        const id = nextDecisionId(name);
        const wrote = await jsonTextWriteForms('docs', { id }, 'j', jsonText)[name](asof);
        if (!('answer' in wrote)) return wrote;
        const r = await asof.req('GET', `/tables/docs/rows/${id}`);
        return r.status === 200 ? { answer: [wrote.answer, r.body.row.j] } : restError(r.status, r.body);
      },
    ]),
  );
}

/** An Arrow IPC stream of one `docs` row whose `j` is a Decimal(10, 2) (123.45). */
export const decimalIpc = (): Buffer =>
  Buffer.from(
    A.tableToIPC(
      new A.Table({
        id: A.vectorFromArray(['d'], new A.Utf8()),
        j: A.makeVector(A.makeData({ type: new A.Decimal(2, 10, 128), length: 1, data: new Uint32Array([12345, 0, 0, 0]) })),
      }),
      'stream',
    ),
  );

/** An Arrow IPC stream of one `docs` row whose `j` is a Map<Utf8, Int32> holding the key `__proto__`. */
export const protoMapIpc = (): Buffer => {
  const entries = new A.Field('entries', new A.Struct([new A.Field('key', new A.Utf8(), false), new A.Field('value', new A.Int32(), true)]), false);
  return Buffer.from(A.tableToIPC(new A.Table({ id: A.vectorFromArray(['m'], new A.Utf8()), j: A.vectorFromArray([new Map([['__proto__', 1]])], new A.Map_(entries)) }), 'stream'));
};

/** An Arrow IPC stream of one `docs` row, `id` only. */
export const docsIpc = (id: string): Buffer => Buffer.from(A.tableToIPC(new A.Table({ id: A.vectorFromArray([id], new A.Utf8()) }), 'stream'));

/** A write of an Arrow IPC stream, as REST Arrow and gRPC WriteRows arrow_ipc; a success answers {count}. */
export function arrowWriteForms(table: string, ipc: Buffer): Record<string, Form> {
  return {
    async 'REST POST /tables/{table}/rows Arrow'(asof) {
      const r = await asof.req('POST', `/tables/${encodeURIComponent(table)}/rows`, ipc, { 'content-type': ARROW });
      return r.status === 200 ? { answer: { count: r.body.count } } : restError(r.status, r.body);
    },
    async 'gRPC asof.v1 WriteRows arrow_ipc'(asof) {
      const { res, err } = await stream(asof.ingest, 'WriteRows', [{ table, arrow_ipc: ipc }]);
      return err ? grpcError(err) : { answer: { count: Number(res.count ?? 0) } };
    },
  };
}

/**
 * A new `users` row (its key made per form, so every form inserts) written in
 * each write form, answered as [{count}, the row REST reads back].
 */
export function insertReadBackForms(row: Record<string, unknown>): Record<string, Form> {
  const names = Object.keys(writeForms('users', [row]));
  return Object.fromEntries(
    names.map((name) => [
      name,
      async (asof: GrpcAsof): Promise<Outcome> => {
        const id = nextDecisionId(name);
        const wrote = await writeForms('users', [{ id, ...row }])[name](asof);
        if (!('answer' in wrote)) return wrote;
        const r = await asof.req('GET', `/tables/users/rows/${id}`);
        if (r.status !== 200) return restError(r.status, r.body);
        const { id: _id, ...rest } = r.body.row;
        return { answer: [wrote.answer, rest] };
      },
    ]),
  );
}

const CHANGE_TYPE: Record<string, string> = { INSERT: '+I', UPDATE_BEFORE: '-U', UPDATE_AFTER: '+U', DELETE: '-D' };

/**
 * The first `n` changelog records from offset `from`: REST's page and a gRPC
 * Follow cancelled once `n` arrived, each as [offset, change type, row JSON]
 * (only the `columns` named, when given: the others may hold times).
 */
export function followForms(table: string, from: number, n: number, columns?: string[]): Record<string, Form> {
  const row = (r: Record<string, unknown>) => (columns ? Object.fromEntries(columns.map((c) => [c, r[c]])) : r);
  return {
    async 'REST GET /tables/{table}/changelog'(asof) {
      const r = await asof.req('GET', `/tables/${encodeURIComponent(table)}/changelog?from=${from}&limit=${n}`);
      if (r.status !== 200) return restError(r.status, r.body);
      return { answer: r.body.records.map((x: any) => [x.offset, x.changeType, row(x.row)]) };
    },
    'gRPC asof.v1 ChangelogService.Follow': (asof) => grpcFollow(asof, table, from, n, row),
  };
}

/**
 * The first `n` records of one key's changelog from offset 0, the key an
 * object of key columns: REST `?key=` (JSON) and a gRPC Follow whose key is a
 * struct_value.
 */
export function keyedFollowForms(table: string, key: Record<string, unknown>, n: number): Record<string, Form> {
  return {
    async 'REST GET /tables/{table}/changelog?key='(asof) {
      const r = await asof.req('GET', `/tables/${encodeURIComponent(table)}/changelog?limit=${n}&key=${encodeURIComponent(JSON.stringify(key))}`);
      if (r.status !== 200) return restError(r.status, r.body);
      return { answer: r.body.records.map((x: any) => [x.offset, x.changeType, x.row]) };
    },
    'gRPC asof.v1 ChangelogService.Follow with a key': (asof) => grpcFollow(asof, table, 0, n, undefined, { struct_value: { fields: Object.fromEntries(Object.entries(key).map(([k, v]) => [k, pbValue(v)])) } }),
  };
}

/** A follow never ends by itself: fewer records than asked for within this long show as a short answer, not a hang. */
const FOLLOW_WAIT_MS = 5000;

/** The first `n` records of a gRPC Follow from `from` (of one key, with `key`: an asof.v1 Value), as followForms gives them. */
const grpcFollow = (asof: GrpcAsof, table: string, from: number, n: number, row: (r: Record<string, unknown>) => unknown = (r) => r, key?: object) =>
  new Promise<Outcome>((resolve) => {
    const got: unknown[] = [];
    const follow = asof.changelog.Follow({ table, from_offset: from, ...(key ? { key } : {}) });
    const timer = setTimeout(() => {
      follow.cancel();
      resolve({ answer: got });
    }, FOLLOW_WAIT_MS);
    follow.on('data', (d: any) => {
      got.push([Number(d.offset), CHANGE_TYPE[d.change_type], row(Object.fromEntries(Object.entries(d.row.columns).map(([k, v]) => [k, asofJson(v)])))]);
      if (got.length === n) {
        clearTimeout(timer);
        follow.cancel();
        resolve({ answer: got });
      }
    });
    follow.on('error', (e: grpc.ServiceError) => {
      clearTimeout(timer);
      if (e.code !== grpc.status.CANCELLED) resolve(grpcError(e));
    });
  });

/**
 * The first `n` records of a REST SSE follow (on the server's real socket:
 * a live stream never ends for inject) sent with `headers`, as followForms
 * gives them; an answer other than the stream is its error.
 */
const sseFollow = (asof: GrpcAsof, path: string, headers: Record<string, string>, n: number) =>
  new Promise<Outcome>((resolve) => {
    const req = http.get(`${asof.url}${path}`, { headers: { accept: 'text/event-stream', ...headers } });
    const got: unknown[] = [];
    const done = (o: Outcome) => {
      clearTimeout(timer);
      req.destroy();
      resolve(o);
    };
    const timer = setTimeout(() => done({ answer: got }), FOLLOW_WAIT_MS);
    req.on('error', () => undefined);
    req.on('response', (res) => {
      let text = '';
      res.setEncoding('utf8');
      if (res.statusCode !== 200) {
        res.on('data', (d) => (text += d)).on('end', () => done(restError(res.statusCode!, JSON.parse(text))));
        return;
      }
      res.on('data', (d) => {
        text += d;
        let end: number;
        while ((end = text.indexOf('\n\n')) >= 0) {
          const data = /^data: (.*)$/m.exec(text.slice(0, end));
          text = text.slice(end + 2);
          if (!data) continue;
          const x = JSON.parse(data[1]);
          got.push([x.offset, x.changeType, x.row]);
          if (got.length === n) return done({ answer: got });
        }
      });
    });
  });

/**
 * Resuming a follow after the record with offset `lastEventId`: an
 * EventSource reconnecting to the first URL (`from=0`) with `Last-Event-ID`,
 * and a gRPC Follow from the next offset (for an id that is an offset); the
 * first `n` records each sends.
 */
export function resumeForms(table: string, lastEventId: string, n: number): Record<string, Form> {
  const forms: Record<string, Form> = {
    'REST SSE changelog, Last-Event-ID': (asof) => sseFollow(asof, `/tables/${encodeURIComponent(table)}/changelog?from=0`, { 'last-event-id': lastEventId }, n),
  };
  if (/^\d+$/.test(lastEventId)) forms['gRPC asof.v1 ChangelogService.Follow from the next offset'] = (asof) => grpcFollow(asof, table, Number(lastEventId) + 1, n);
  return forms;
}

/** Feast's GetFeastServingInfo (gRPC only; Feast's REST server has no such route): answers whether a version came back. */
export const servingInfoForms: Record<string, Form> = {
  async 'Feast gRPC GetFeastServingInfo'(asof) {
    const { res, err } = await call(asof.feast, 'GetFeastServingInfo', {});
    return err ? grpcError(err) : { answer: typeof res.version === 'string' && res.version.length > 0 };
  },
};

/**
 * A lookup whose request does not parse: REST JSON cut short, and gRPC bytes
 * that are not a GetOnlineFeaturesRequest, sent with the target's key.
 */
export const malformedLookupForms: Record<string, Form> = {
  async 'REST POST /features, JSON cut short'(asof) {
    const r = await asof.req('POST', '/features', '{"entities":[1', { 'content-type': 'application/json' });
    return restError(r.status, r.body);
  },
  async 'gRPC asof.v1 GetOnlineFeatures, bytes that are not the message'(asof) {
    // Sent through the target's own client, whose interceptor adds the target's key (world.ts), with identity (de)serializers.
    const bytes = Buffer.from([0x0a, 0xff, 0xff]);
    const raw = (b: Buffer): Buffer => b;
    const err = await new Promise<grpc.ServiceError | null>((resolve) => asof.online.makeUnaryRequest('/asof.v1.OnlineService/GetOnlineFeatures', raw, raw, bytes, (e: grpc.ServiceError | null) => resolve(e)));
    return err ? grpcError(err) : { answer: 'decoded' };
  },
};
