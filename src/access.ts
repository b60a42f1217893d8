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
 * every scope. Throws on an unknown scope, naming it (never the key).
 */
export function parseKeyList(text: string): KeyEntry[] {
  return text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((item, i) => {
      const colon = item.lastIndexOf(':');
      // A key may itself contain ':' only when scopes follow; `abc:` (empty scopes) means all.
      return colon < 0 ? { key: item, scopes: [...SCOPES] } : { key: item.slice(0, colon), scopes: parseScopes(item.slice(colon + 1), `key #${i + 1}`, '+') };
    });
}

/** Parses a key file: one `key scope scope...` (or `key scope+scope`) per line; `#` starts a comment; blank lines are skipped. */
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

export function parseKeyFile(text: string): KeyEntry[] {
  const out: KeyEntry[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/#.*$/, '').trim();
    if (!line) return;
    const [key, ...rest] = line.split(/\s+/);
    out.push({ key, scopes: parseScopes(rest.join('+'), `line ${i + 1}`, '+') });
  });
  return out;
}

function parseScopes(text: string, where: string, sep: string): Scope[] {
  const names = text.split(sep).map((s) => s.trim().toLowerCase()).filter(Boolean);
  if (names.length === 0) return [...SCOPES];
  for (const n of names) if (!(SCOPES as readonly string[]).includes(n)) throw new Error(`API keys, ${where}: unknown scope "${n}" (scopes: ${SCOPES.join(', ')})`);
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

  /** Re-reads the key file (if any). Throws, keeping the old keys, when the file cannot be read or parsed. */
  reload(): number {
    const list = [...(this.source.keys ?? []), ...(this.source.file ? parseKeyFile(readKeyFile(this.source.file)) : [])];
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
