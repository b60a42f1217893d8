/**
 * Flag parsing for the client commands (`ingest`, `export`): `--name value`,
 * `--name=value`, bare `--flag` for booleans, positionals in order. Unknown
 * flags are an error that lists the known ones.
 */
export interface Parsed {
  flags: Map<string, string>;
  bools: Set<string>;
  positionals: string[];
}

export class UsageError extends Error {}

export function parseArgs(argv: string[], spec: { values: string[]; bools?: string[] }): Parsed {
  const out: Parsed = { flags: new Map(), bools: new Set(), positionals: [] };
  const bools = new Set(spec.bools ?? []);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) {
      out.positionals.push(a);
      continue;
    }
    const [name, inline] = a.slice(2).split(/=(.*)/s, 2);
    if (bools.has(name)) out.bools.add(name);
    else if (spec.values.includes(name)) {
      const v = inline ?? argv[++i];
      if (v === undefined) throw new UsageError(`--${name} needs a value`);
      out.flags.set(name, v);
    } else throw new UsageError(`unknown option --${name} (known: ${[...spec.values, ...bools].map((n) => `--${n}`).join(', ')})`);
  }
  return out;
}
