/**
 * `asof.v1.OnlineService`: the online service's answer with typed values. One
 * call, many entities, exactly what `POST /features` answers over REST.
 *
 * The hot path of the gRPC server, so it skips proto-loader both ways: the
 * request is read and the answer written by hand (online-wire.ts), from the
 * online service's plan and evaluation, without building objects per value;
 * with the embedded store the whole call runs without waiting on a promise.
 */
import type * as grpc from '@grpc/grpc-js';
import type { Plan } from '../online/service.js';
import type { Services } from '../services.js';
import { callerOfCall, unary, type CallContext } from './calls.js';
import { decodeOnlineRequest, encodeOnlineAnswer, entityKeys, type OnlineRequest } from './online-wire.js';

/** The method's definition, reading and answering raw bytes (see online-wire.ts). */
export function onlineServiceDefinition(def: grpc.ServiceDefinition): grpc.ServiceDefinition {
  return { ...def, GetOnlineFeatures: { ...def.GetOnlineFeatures, requestDeserialize: decodeOnlineRequest, responseSerialize: (b: Buffer) => b } };
}

export function onlineService(ctx: CallContext, services: Pick<Services, 'online' | 'audit'>): grpc.UntypedServiceImplementation {
  const { online, audit } = services;
  return {
    GetOnlineFeatures: unary(ctx, 'read', (req: OnlineRequest, call) => {
      const keys = entityKeys(req.entities);
      const ids = req.decisionIds;
      // A recorded lookup is durable before it is answered (audit/service.ts).
      const recorded = async (plan: Plan): Promise<Buffer> => {
        const e = online.evaluateSync(keys, plan) ?? (await online.evaluate(keys, plan));
        await audit.recordLookups(callerOfCall(call), ids!.map((d) => d || undefined), keys, e);
        return encodeOnlineAnswer(e, req.entities);
      };
      const answer = (plan: Plan): Buffer | Promise<Buffer> => {
        if (ids) return recorded(plan);
        const e = online.evaluateSync(keys, plan);
        return e ? encodeOnlineAnswer(e, req.entities) : online.evaluate(keys, plan).then((x) => encodeOnlineAnswer(x, req.entities));
      };
      const plan = online.planFresh(req.selection);
      return plan instanceof Promise ? plan.then(answer) : answer(plan);
    }, 'lookups'),
  };
}
