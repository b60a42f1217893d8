/**
 * `asof.v1.OnlineService`: the online service's answer with typed values. One
 * call, many entities, exactly what `POST /features` answers over REST.
 *
 * The one method with a message written by hand: the request is read by
 * the code generated from proto/ (online-codec.ts), the answer written by
 * online-wire.ts, which says which figure of bench:grpc keeps it (the
 * generated encoder stays as that benchmark's same-run reference and as a
 * test oracle). Every other message goes through the generated codecs.
 * With the embedded store the whole call runs without waiting on a promise.
 */
import type * as grpc from '@grpc/grpc-js';
import type { Plan } from '../online/service.js';
import type { Services } from '../services.js';
import { callerOfCall, unary, type CallContext } from './calls.js';
import * as generated from './online-codec.js';
import { decodeOnlineRequest, entityKeys, type OnlineRequest } from './online-codec.js';
import * as hand from './online-wire.js';

/** Which encoder writes GetOnlineFeatures' answer: the hand-written one (the server's), or the generated one (bench:grpc's same-run reference, and tests). */
export type OnlineWire = 'generated' | 'hand';

/** The method's definition, reading the request with the generated codec and answering raw bytes (the encoder is the handler's). */
export function onlineServiceDefinition(def: grpc.ServiceDefinition): grpc.ServiceDefinition {
  return { ...def, GetOnlineFeatures: { ...def.GetOnlineFeatures, requestDeserialize: decodeOnlineRequest, responseSerialize: (b: Buffer) => b } };
}

export function onlineService(ctx: CallContext, services: Pick<Services, 'online' | 'audit'>, wire: OnlineWire = 'hand'): grpc.UntypedServiceImplementation {
  const { online, audit } = services;
  const encode = wire === 'hand' ? hand.encodeOnlineAnswer : generated.encodeOnlineAnswer;
  return {
    GetOnlineFeatures: unary(ctx, 'read', (req: OnlineRequest, call) => {
      const keys = entityKeys(req.entities);
      const ids = req.decisionIds;
      // A recorded lookup is durable before it is answered; one recorded before answers what it answered then (audit/service.ts).
      const recorded = async (plan: Plan): Promise<Buffer> => {
        const e = await online.evaluate(keys, plan);
        return encode(await audit.recordLookups(callerOfCall(call), ids!.map((d) => d || undefined), keys, e), req.entities);
      };
      const answer = (plan: Plan): Buffer | Promise<Buffer> => {
        if (ids) return recorded(plan);
        const e = online.evaluate(keys, plan);
        return e instanceof Promise ? e.then((x) => encode(x, req.entities)) : encode(e, req.entities);
      };
      const plan = online.plan(req.selection);
      return plan instanceof Promise ? plan.then(answer) : answer(plan);
    }, 'lookups'),
  };
}
