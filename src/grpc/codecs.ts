/**
 * The gRPC wire codecs, one per message, generated from proto/ by protobufjs
 * (src/grpc/generated/, `npm run protos`; a test fails when they are stale).
 *
 * Handlers see messages in the object form proto-loader gives (fields as in
 * the .proto, int64 as decimal strings, enums by name, a oneof's set member
 * named by a virtual field), and may answer in it; the generated code
 * encodes and decodes them. proto-loader itself now only supplies the
 * service descriptions (method paths, streaming) and server reflection.
 */
import type * as grpc from '@grpc/grpc-js';
import $protobuf from 'protobufjs/minimal.js';
import { asof, feast, google } from './generated/protos.js';

/** A generated message class: what the codec needs of it. */
export interface MessageType<T = unknown> {
  encode(message: T, writer?: $protobuf.Writer): $protobuf.Writer;
  decode(reader: Uint8Array | $protobuf.Reader, length?: number): T;
  fromObject(object: Record<string, unknown>): T;
  toObject(message: T, options?: $protobuf.IConversionOptions): Record<string, unknown>;
}

/** The object form handlers see (the same options the server gave proto-loader). */
export const OBJECT_FORM: $protobuf.IConversionOptions = { longs: String, enums: String, defaults: false, oneofs: true };

export interface Codec {
  /** Object form (or a generated message) → bytes. */
  serialize(value: unknown): Buffer;
  /** Bytes → object form. */
  deserialize(bytes: Buffer): Record<string, unknown>;
}

const codecs = new Map<MessageType<any>, Codec>();

export function codecOf(type: MessageType<any>): Codec {
  let c = codecs.get(type);
  if (!c) {
    c = {
      serialize: (value) => {
        const m = value instanceof (type as unknown as new () => object) ? value : type.fromObject(value as Record<string, unknown>);
        return type.encode(m).finish() as Buffer;
      },
      deserialize: (bytes) => type.toObject(type.decode(bytes), OBJECT_FORM),
    };
    codecs.set(type, c);
  }
  return c;
}

const PACKAGES: Record<string, Record<string, unknown>> = { 'asof.v1': asof.v1, 'feast.serving': feast.serving, 'feast.types': feast.types, 'google.protobuf': google.protobuf };

/** The generated class of a message by its full name (`asof.v1.Value`); throws naming it when proto/ and the generated code disagree. */
export function messageType(fullName: string): MessageType<any> {
  const dot = fullName.lastIndexOf('.');
  const type = PACKAGES[fullName.slice(0, dot)]?.[fullName.slice(dot + 1)] as MessageType<any> | undefined;
  if (!type?.encode) throw new Error(`no generated codec for ${fullName}: run \`npm run protos\` after changing proto/`);
  return type;
}

/**
 * A service definition (from proto-loader) with every method's messages
 * encoded and decoded by the generated codecs. Request and response types
 * are looked up in the service's own package.
 */
export function withGeneratedCodecs(def: grpc.ServiceDefinition): grpc.ServiceDefinition {
  const out: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const [name, m] of Object.entries(def)) {
    const pkg = m.path.slice(1, m.path.lastIndexOf('.', m.path.indexOf('/', 1)));
    const typeName = (t: unknown): string => `${pkg}.${(t as { type: { name: string } }).type.name}`;
    const req = codecOf(messageType(typeName((m as unknown as { requestType: unknown }).requestType)));
    const res = codecOf(messageType(typeName((m as unknown as { responseType: unknown }).responseType)));
    out[name] = { ...m, requestSerialize: req.serialize, requestDeserialize: req.deserialize, responseSerialize: res.serialize, responseDeserialize: res.deserialize };
  }
  return out as grpc.ServiceDefinition;
}
