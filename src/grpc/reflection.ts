/**
 * gRPC server reflection over asof's protos, so grpcurl and similar tools can
 * list, describe and call the services without the .proto files.
 *
 * proto-loader (through protobufjs) describes each package as one file
 * ("asof_v1.proto") in a form strict descriptor linkers, grpcurl's among them,
 * refuse: no `dependency` list (grpc-node issue #2595), type names relative to
 * their scope, and map entry types named after the field ("Token") rather
 * than "<Field>Entry". Those three are repaired here, before the definitions
 * go to @grpc/reflection: every type reference fully qualified, map entries
 * renamed as protoc names them, and each file listing the files it uses.
 */
import { createRequire } from 'node:module';
import type * as grpc from '@grpc/grpc-js';
import type { PackageDefinition } from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';
import type { Type } from 'protobufjs';

interface FieldProto {
  name?: string;
  typeName?: string;
}
interface MessageProto {
  name?: string;
  field?: FieldProto[];
  nestedType?: MessageProto[];
  enumType?: { name?: string }[];
  options?: { mapEntry?: boolean };
}
interface FileProto {
  name?: string;
  package?: string;
  dependency?: string[];
  messageType?: MessageProto[];
  enumType?: { name?: string }[];
  service?: { name?: string; method?: { inputType?: string; outputType?: string }[] }[];
}

const FileDescriptorProto = (createRequire(import.meta.url)('protobufjs/ext/descriptor') as { FileDescriptorProto: Type }).FileDescriptorProto;

export function addReflection(server: Pick<grpc.Server, 'addService'>, pkg: PackageDefinition): void {
  new ReflectionService(withStrictDescriptors(pkg)).addToServer(server);
}

/** "request_context" → "RequestContextEntry", protoc's name for a map field's entry type. */
const mapEntryName = (field: string): string => field.replace(/(^|_)([a-z0-9])/g, (_m, _u, c: string) => c.toUpperCase()) + 'Entry';

/** The same definitions, with file descriptors repaired as the header says. */
export function withStrictDescriptors(pkg: PackageDefinition): PackageDefinition {
  const nameOf = new Map<Buffer, string>();
  const files = new Map<string, FileProto>();
  for (const def of Object.values(pkg)) {
    for (const bin of (def as { fileDescriptorProtos?: Buffer[] }).fileDescriptorProtos ?? []) {
      if (nameOf.has(bin)) continue;
      const file = FileDescriptorProto.toObject(FileDescriptorProto.decode(bin)) as FileProto;
      nameOf.set(bin, file.name!);
      files.set(file.name!, file);
    }
  }

  // Fully qualified symbol (no leading dot) → the file that defines it.
  const owner = new Map<string, string>();
  const eachMessage = (visit: (m: MessageProto, fqn: string, file: FileProto) => void): void => {
    for (const f of files.values()) {
      const walk = (m: MessageProto, scope: string): void => {
        const fqn = scope ? `${scope}.${m.name}` : m.name!;
        visit(m, fqn, f);
        for (const n of m.nestedType ?? []) walk(n, fqn);
      };
      for (const m of f.messageType ?? []) walk(m, f.package ?? '');
    }
  };
  for (const f of files.values()) {
    const prefix = f.package ? `${f.package}.` : '';
    for (const e of f.enumType ?? []) owner.set(prefix + e.name, f.name!);
    for (const s of f.service ?? []) owner.set(prefix + s.name, f.name!);
  }
  eachMessage((m, fqn, f) => {
    owner.set(fqn, f.name!);
    for (const e of m.enumType ?? []) owner.set(`${fqn}.${e.name}`, f.name!);
  });

  /** A type name as written in `scope` → fully qualified with a leading dot (C++-like scoping, innermost first). */
  const qualify = (name: string | undefined, scope: string): string | undefined => {
    if (!name || name.startsWith('.')) return name;
    for (let s = scope; ; s = s.includes('.') ? s.slice(0, s.lastIndexOf('.')) : '') {
      const fqn = s ? `${s}.${name}` : name;
      if (owner.has(fqn)) return `.${fqn}`;
      if (!s) return name;
    }
  };

  // 1. Qualify every reference, while names are still the ones protobufjs gave.
  eachMessage((m, fqn) => {
    for (const field of m.field ?? []) field.typeName = qualify(field.typeName, fqn);
  });
  for (const f of files.values()) {
    for (const s of f.service ?? []) {
      for (const m of s.method ?? []) {
        m.inputType = qualify(m.inputType, f.package ?? '');
        m.outputType = qualify(m.outputType, f.package ?? '');
      }
    }
  }

  // 2. Rename map entries after the field that uses them, and point the field at the new name.
  const renamed = new Map<string, string>();
  eachMessage((m, fqn) => {
    for (const n of m.nestedType ?? []) {
      if (!n.options?.mapEntry) continue;
      const field = (m.field ?? []).find((x) => x.typeName === `.${fqn}.${n.name}`);
      if (!field) continue;
      const to = mapEntryName(field.name!);
      renamed.set(`${fqn}.${n.name}`, `${fqn}.${to}`);
      n.name = to;
      field.typeName = `.${fqn}.${to}`;
    }
  });
  for (const [from, to] of renamed) owner.set(to, owner.get(from)!);

  // 3. Each file lists the files its references live in.
  const encoded = new Map<string, Buffer>();
  for (const f of files.values()) {
    const deps = new Set(f.dependency ?? []);
    const refer = (typeName?: string): void => {
      const o = typeName ? owner.get(typeName.slice(1)) : undefined;
      if (o && o !== f.name) deps.add(o);
    };
    const walk = (m: MessageProto): void => {
      for (const field of m.field ?? []) refer(field.typeName);
      for (const n of m.nestedType ?? []) walk(n);
    };
    for (const m of f.messageType ?? []) walk(m);
    for (const s of f.service ?? []) for (const m of s.method ?? []) (refer(m.inputType), refer(m.outputType));
    f.dependency = [...deps].sort();
    encoded.set(f.name!, Buffer.from(FileDescriptorProto.encode(FileDescriptorProto.fromObject(f)).finish()));
  }

  const out: PackageDefinition = {};
  for (const [name, def] of Object.entries(pkg)) {
    const bins = (def as { fileDescriptorProtos?: Buffer[] }).fileDescriptorProtos;
    out[name] = bins ? ({ ...def, fileDescriptorProtos: bins.map((b) => encoded.get(nameOf.get(b)!)!) } as typeof def) : def;
  }
  return out;
}
