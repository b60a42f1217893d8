/**
 * `asof.v1.OnlineService`: the online service's answer with typed values. One
 * call, many entities, exactly what `POST /features` answers over REST.
 *
 * The one method whose messages are read and written by hand (online-wire.ts,
 * value-wire.ts, wire.ts) rather than by the code generated from proto/
 * (online-codec.ts): bench:grpc runs both in one process, in turns, against
 * a bare grpc-js server sending the same bytes. On 2026-12-06 (2 shared
 * cores at 99% CPU pressure) the generated codec took 129 µs of server CPU
 * per call against the bare server's 79 (0.61, target 0.8); the hand-written
 * wire took 80 (0.99). Every other message goes through the generated codecs.
 * With the embedded store the whole call runs without waiting on a promise.
 */
import type * as grpc from '@grpc/grpc-js';
import type { Plan } from '../online/service.js';
import type { Services } from '../services.js';
import { callerOfCall, unary, type CallContext } from './calls.js';
import * as generated from './online-codec.js';
import * as hand from './online-wire.js';

/** Which codec answers GetOnlineFeatures: the hand-written wire (the server's), or the generated one (bench:grpc's same-run reference, and tests). */
export type OnlineWire = 'generated' | 'hand';

/** The method's definition, reading and answering raw bytes (the codec is the handler's). */
export function onlineServiceDefinition(def: grpc.ServiceDefinition, wire: OnlineWire = 'hand'): grpc.ServiceDefinition {
  const codec = wire === 'hand' ? hand : generated;
  return { ...def, GetOnlineFeatures: { ...def.GetOnlineFeatures, requestDeserialize: codec.decodeOnlineRequest, responseSerialize: (b: Buffer) => b } };
}

export function onlineService(ctx: CallContext, services: Pick<Services, 'online' | 'audit'>, wire: OnlineWire = 'hand'): grpc.UntypedServiceImplementation {
  const { online, audit } = services;
  const codec = (wire === 'hand' ? hand : generated) as typeof generated;
  return {
    GetOnlineFeatures: unary(ctx, 'read', (req: generated.OnlineRequest, call) => {
      const keys = codec.entityKeys(req.entities);
      const ids = req.decisionIds;
      // A recorded lookup is durable before it is answered (audit/service.ts).
      const recorded = async (plan: Plan): Promise<Buffer> => {
        const e = online.evaluateSync(keys, plan) ?? (await online.evaluate(keys, plan));
        await audit.recordLookups(callerOfCall(call), ids!.map((d) => d || undefined), keys, e);
        return codec.encodeOnlineAnswer(e, req.entities);
      };
      const answer = (plan: Plan): Buffer | Promise<Buffer> => {
        if (ids) return recorded(plan);
        const e = online.evaluateSync(keys, plan);
        return e ? codec.encodeOnlineAnswer(e, req.entities) : online.evaluate(keys, plan).then((x) => codec.encodeOnlineAnswer(x, req.entities));
      };
      const plan = online.planFresh(req.selection);
      return plan instanceof Promise ? plan.then(answer) : answer(plan);
    }, 'lookups'),
  };
}
