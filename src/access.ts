/**
 * Scoped API keys: who may do what. Every adapter (REST routes, gRPC methods,
 * Feast over both) declares the access each operation needs and asks this one
 * module; nothing else compares keys.
 *
 * Keys are kept only as SHA-256 digests: every check compares the digest of
 * the key it was given with every configured digest by timingSafeEqual,
 * without stopping at a match, so neither the answer time nor a log line can
 * reveal a key or its length. The digests of recently presented keys are
 * remembered (a bounded map), so a client that sends its key on every
 * request is not hashed every time; what a digest matches is decided afresh
 * on every check, so a reload (SIGHUP) takes effect at once.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { AsofError } from './errors.js';
import { ownString } from './util/strings.js';

/**
 * read: rows, changelog, features (also Feast), vector search, training sets, definitions;
 * write: rows, imports; decide: recording decisions; admin: defining tables,
 * views and services, deleting jobs; audit: `/audit/*`.
 */
export const SCOPES = ['read', 'write', 'decide', 'admin', 'audit'] as const;
export type Scope = (typeof SCOPES)[number];

/**
 * What an operation needs: a scope; `authenticated` (any valid key, e.g.
 * /metrics); or `public` (health, readiness, the API description).
 */
export type Access = Scope | 'authenticated' | 'public';

export interface KeyEntry {
  key: string;
  /** The key's scopes; all of them when the key was listed without any. */
  scopes: Scope[];
}

/** Who is calling: the scopes its key grants (all of them when auth is off). */
export interface Caller {
  readonly scopes: ReadonlySet<Scope>;
}

const ALL: Caller = { scopes: new Set(SCOPES) };
/** The caller when no keys are configured (loopback only, app.ts): everything is allowed. */
export const UNRESTRICTED: Caller = ALL;
/** The caller of a public route (keys configured) that presents no valid key: no scope at all. */
const ANONYMOUS: Caller = { scopes: new Set() };

/**
 * Parses `key:scope+scope,...` (ASOF_API_KEYS). A key without `:scopes` has
 * every scope. Throws on an unknown scope, a key that is empty, repeated or
 * holds a character keys may not (`checkKeys`), and a list of no key at all,
 * naming the entry (`key #n`, counting the non-empty entries), never the key.
 */
export function parseKeyList(text: string): KeyEntry[] {
  const entries = text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((item, i) => {
      const colon = item.lastIndexOf(':');
      // `abc:` (empty scopes) means all; a ':' before the last is in the key, refused by checkKeys.
      return colon < 0 ? { key: item, scopes: [...SCOPES] } : { key: item.slice(0, colon), scopes: parseScopes(item.slice(colon + 1), `key #${i + 1}`, '+') };
    });
  if (entries.length === 0) throw new Error('API keys: the list names no key (`key:scope+scope,...`); leave it unset to turn auth off (loopback only)');
  checkKeys(entries, (i) => `key #${i + 1}`, 'API keys');
  return entries;
}

/** The key file's text; an error that names the variable and the path when it cannot be read (a bare ENOENT said neither). */
function readKeyFile(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const why = err.code === 'ENOENT' ? 'no such file' : err.code === 'EACCES' ? 'permission denied' : err.code === 'EISDIR' ? 'a folder, not a file' : err.message;
    throw new Error(`ASOF_API_KEYS_FILE (--api-keys-file) ${path}: cannot read the API key file: ${why}`);
  }
}

/**
 * Parses a key file: one `key scope scope...` (or `key scope+scope`) per line; `#` starts a comment; blank
 * lines are skipped. Throws as parseKeyList does, naming the line (`label` leads the message); `taken`: keys
 * listed elsewhere (ASOF_API_KEYS), each with where, refused as repeats too.
 */
export function parseKeyFile(text: string, label = 'API keys', taken: ReadonlyMap<string, string> = new Map()): KeyEntry[] {
  const out: KeyEntry[] = [];
  const lines: number[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/#.*$/, '').trim();
    if (!line) return;
    const [key, ...rest] = line.split(/\s+/);
    out.push({ key, scopes: parseScopes(rest.join('+'), `line ${i + 1}`, '+', label) });
    lines.push(i + 1);
  });
  checkKeys(out, (i) => `line ${lines[i]}`, label, taken);
  return out;
}

/** What a key may not hold: `,` and `:` (ASOF_API_KEYS' separators), whitespace, control characters (no header carries them). */
function forbiddenIn(key: string): string | undefined {
  const m = /[,:\s\p{Cc}]/u.exec(key);
  if (!m) return undefined;
  const c = m[0];
  return c === ',' || c === ':' ? `"${c}"` : c === ' ' ? 'a space' : c === '\t' ? 'a tab' : /\s/.test(c) ? 'whitespace' : 'a control character';
}

/**
 * Refuses an empty key, one with a character keys may not hold, and a key listed twice (its entries would not
 * merge: the first would win, the second's scopes silently lost): list each key once with all its scopes.
 * Names the entries by `where` (and `taken`'s, for keys listed elsewhere), never the key.
 */
function checkKeys(entries: readonly KeyEntry[], where: (i: number) => string, label: string, taken: ReadonlyMap<string, string> = new Map()): void {
  const first = new Map<string, number>();
  entries.forEach((e, i) => {
    if (e.key === '') throw new Error(`${label}, ${where(i)}: the key is empty`);
    const bad = forbiddenIn(e.key);
    if (bad) throw new Error(`${label}, ${where(i)}: the key contains ${bad} (keys may not contain ",", ":", whitespace or control characters)`);
    const seen = first.get(e.key);
    const elsewhere = taken.get(e.key);
    if (seen !== undefined || elsewhere !== undefined) {
      throw new Error(`${label}, ${where(i)}: the same key as ${seen !== undefined ? where(seen) : elsewhere} (list each key once, with all its scopes)`);
    }
    first.set(e.key, i);
  });
}

function parseScopes(text: string, where: string, sep: string, label = 'API keys'): Scope[] {
  const names = text.split(sep).map((s) => s.trim().toLowerCase()).filter(Boolean);
  if (names.length === 0) return [...SCOPES];
  for (const n of names) if (!(SCOPES as readonly string[]).includes(n)) throw new Error(`${label}, ${where}: unknown scope "${n}" (scopes: ${SCOPES.join(', ')})`);
  return [...new Set(names)] as Scope[];
}

const digest = (key: string): Buffer => createHash('sha256').update(key).digest();

/** Digests remembered at most (then the map starts again), and only of keys up to this many characters. */
const DIGESTS_KEPT = 1024;
const MAX_KEPT_KEY = 256;

export interface KeySource {
  /** ASOF_API_KEYS, parsed. */
  keys?: KeyEntry[];
  /** ASOF_API_KEYS_FILE: re-read by reload() (SIGHUP). */
  file?: string;
}

/** The configured keys. With neither list nor file, auth is off (`enabled` false) and every caller is unrestricted. */
export class ApiKeys {
  private entries: { digest: Buffer; caller: Caller }[] = [];
  /** Presented key → its SHA-256 digest (never a caller: that is looked up against the current entries every time). */
  private digests = new Map<string, Buffer>();
  /** True when keys were configured; fixed at start, so a key file emptied later locks everyone out rather than opening up. */
  readonly enabled: boolean;

  constructor(private readonly source: KeySource = {}) {
    this.enabled = (source.keys?.length ?? 0) > 0 || source.file !== undefined;
    this.reload();
  }

  /**
   * Re-reads the key file (if any). Throws, keeping the old keys, when the file cannot be read or parsed, or
   * lists a key ASOF_API_KEYS lists too.
   */
  reload(): number {
    const file = this.source.file;
    const listed = new Map((this.source.keys ?? []).map((e, i) => [e.key, `ASOF_API_KEYS' key #${i + 1}`]));
    const fromFile = file ? parseKeyFile(readKeyFile(file), `ASOF_API_KEYS_FILE (--api-keys-file) ${file}`, listed) : [];
    const list = [...(this.source.keys ?? []), ...fromFile];
    this.entries = list.map((e) => ({ digest: digest(e.key), caller: { scopes: new Set(e.scopes) } }));
    return this.entries.length;
  }

  /** Digests remembered now (at most 1,024): for tests. */
  get remembered(): number {
    return this.digests.size;
  }

  /** The caller a key belongs to, or undefined. Constant time in the key and over all entries (once its digest is known). */
  identify(given: string): Caller | undefined {
    let d = this.digests.get(given);
    if (d === undefined) {
      d = digest(given);
      if (given.length <= MAX_KEPT_KEY) {
        if (this.digests.size >= DIGESTS_KEPT) this.digests = new Map();
        // Its own copy: the key is cut from its header, which may be 16 KiB of padding around it.
        this.digests.set(ownString(given), d);
      }
    }
    let found: Caller | undefined;
    for (const e of this.entries) if (timingSafeEqual(e.digest, d) && !found) found = e.caller;
    return found;
  }

  /**
   * The caller of a request presenting `given` (from bearerKey) for an
   * operation needing `need`; throws 401 without a valid key, 403 naming the
   * missing scope. A public operation admits everyone, but its caller has
   * only the scopes of the key presented, if valid (none otherwise): what it
   * answers may depend on them (/metrics with ASOF_METRICS_OPEN).
   */
  authorize(given: string | undefined, need: Access): Caller {
    if (!this.enabled) return ALL;
    if (need === 'public') return (given ? this.identify(given) : undefined) ?? ANONYMOUS;
    if (!given) throw new AsofError('ASOF_UNAUTHENTICATED', 'an API key is required: send "Authorization: Bearer <key>" (or "x-api-key: <key>")');
    const caller = this.identify(given);
    if (!caller) throw new AsofError('ASOF_UNAUTHENTICATED', 'the API key is not valid');
    if (need !== 'authenticated') requireScope(caller, need);
    return caller;
  }
}

/**
 * Throws 403 ASOF_PERMISSION_DENIED unless the caller holds `scope` (for rules
 * that depend on the request, e.g. a lookup that records a decision); `why`,
 * when given, says what needed the scope and leads the message.
 */
export function requireScope(caller: Caller, scope: Scope, why?: string): void {
  if (!caller.scopes.has(scope)) throw new AsofError('ASOF_PERMISSION_DENIED', `${why ? `${why}; ` : ''}this API key lacks the "${scope}" scope`, { scope, scopes: [...caller.scopes] });
}

/**
 * The key a request presents: `Authorization: Bearer <key>` (the scheme in
 * any case, RFC 7235) or else `x-api-key: <key>`.
 */
export function bearerKey(authorization: unknown, xApiKey: unknown): string | undefined {
  if (typeof authorization === 'string' && authorization.length > 7 && authorization.slice(0, 7).toLowerCase() === 'bearer ') return authorization.slice(7).trim() || undefined;
  return typeof xApiKey === 'string' && xApiKey !== '' ? xApiKey : undefined;
}
