/**
 * Tamper evidence: walking a table's hash chain (engine/log.ts, frame format
 * 2) and signing chain heads with Ed25519 (node:crypto).
 *
 * A walk recomputes each frame's link from the previous frame's stored hash
 * and its own header fields and payload, and compares it with the hash the
 * frame stores. A mismatch is reported (the first one, by offset) and the walk
 * goes on from the stored hash, so one rewritten frame is named alone and later
 * frames stay readable. Rewriting the chain after a changed frame makes the
 * walk pass again, but then the stored hashes differ from heads saved before
 * (a decision's heads, or a signed head kept outside asof).
 */
import { createPrivateKey, createPublicKey, sign, verify as verifySignature, type KeyObject } from 'node:crypto';
import { AsofError } from '../errors.js';
import type { Table } from '../engine/table.js';
import { CHAIN_GENESIS, chainHash } from '../engine/log.js';
import type { ChainHead } from './decisions.js';

export interface VerifyResult {
  ok: boolean;
  /** The newest frame walked: its last offset and stored hash (hex); offset -1 when nothing was walked. */
  head: ChainHead;
  /** Frames walked. */
  checked: number;
  /** Frames written in format 1 (before chain hashes): readable, not chained. */
  unchained: number;
  firstBroken?: { offset: number; expected: string; actual: string; reason: 'hash' | 'checksum' };
}

/**
 * Walks the frames holding offsets [from, to] (inclusive; defaults: the whole
 * table). Hot frames only until the cold tier exposes its frame records: the
 * walk is `table.storedFrames`, the one place that will union them.
 */
export async function verifyChain(table: Table, from = 0, to = table.endOffset - 1): Promise<VerifyResult> {
  const out: VerifyResult = { ok: true, head: { offset: -1, hash: CHAIN_GENESIS.toString('hex') }, checked: 0, unchained: 0 };
  let prev: Uint8Array | undefined;
  for await (const f of table.storedFrames(from, to + 1)) {
    if (prev === undefined) prev = await anchor(table, f.firstOffset);
    out.checked++;
    out.head = { offset: f.firstOffset + f.count - 1, hash: f.hash ? Buffer.from(f.hash).toString('hex') : CHAIN_GENESIS.toString('hex') };
    // A chained frame whose link holds is intact: the SHA-256 covers every header field after the checksum, the stored
    // hash and the payload, which is all the CRC-32 covers. Its CRC-32 is checked only to say why a link breaks, and
    // on unchained (format 1) frames, which have no link.
    const expected = f.hash ? chainHash(prev, table.name, f, f.payload) : undefined;
    // Hashes kept across frames are copied: a walk reuses its read buffers (table-scan.ts).
    if (expected !== undefined && expected.equals(f.hash!)) {
      prev = Buffer.from(f.hash!);
      continue;
    }
    if (!f.crcOk) {
      out.ok = false;
      out.firstBroken ??= { offset: f.firstOffset, expected: 'a frame whose CRC-32 matches its bytes', actual: 'CRC-32 mismatch', reason: 'checksum' };
      if (f.hash) prev = Buffer.from(f.hash);
      continue;
    }
    if (expected === undefined || f.hash === null) {
      out.unchained++;
      continue;
    }
    out.ok = false;
    out.firstBroken ??= { offset: f.firstOffset, expected: expected.toString('hex'), actual: Buffer.from(f.hash).toString('hex'), reason: 'hash' };
    prev = Buffer.from(f.hash);
  }
  return out;
}

/** The previous hash for a walk starting at the frame that begins at `firstOffset`: the stored hash of the frame before it. */
async function anchor(table: Table, firstOffset: number): Promise<Uint8Array> {
  if (firstOffset === 0) return CHAIN_GENESIS;
  for await (const f of table.storedFrames(firstOffset - 1, firstOffset)) return f.hash ? Buffer.from(f.hash) : CHAIN_GENESIS;
  return CHAIN_GENESIS;
}

/** The stored chain hash (hex) of the frame whose last offset is `offset`; undefined when no hot frame ends there. */
export async function storedHeadAt(table: Table, offset: number): Promise<string | undefined> {
  if (offset < 0) return CHAIN_GENESIS.toString('hex');
  for await (const f of table.storedFrames(offset, offset + 1)) {
    if (f.firstOffset + f.count - 1 !== offset) return undefined;
    return f.hash ? Buffer.from(f.hash).toString('hex') : CHAIN_GENESIS.toString('hex');
  }
  return undefined;
}

/** What a signature covers for a table's head; stable text, so anyone can check it with the public key. */
export const headMessage = (table: string, head: ChainHead): string => `asof.chain-head.v1\n${table}\n${head.offset}\n${head.hash}`;

/** Signs with the Ed25519 key of ASOF_AUDIT_SIGNING_KEY: a PKCS#8 PEM, or the 32-byte seed in base64 or hex. */
export class HeadSigner {
  readonly publicKey: string;
  private constructor(private readonly key: KeyObject) {
    this.publicKey = createPublicKey(key).export({ type: 'spki', format: 'pem' }).toString();
  }

  static fromText(text: string): HeadSigner {
    let key: KeyObject;
    try {
      if (text.includes('-----BEGIN')) key = createPrivateKey(text);
      else {
        const seed = /^[0-9a-fA-F]{64}$/.test(text) ? Buffer.from(text, 'hex') : Buffer.from(text, 'base64');
        if (seed.length !== 32) throw new Error(`an Ed25519 seed is 32 bytes, got ${seed.length}`);
        // PKCS#8 wrapping of a raw Ed25519 seed (RFC 8410): a fixed 16-byte prefix.
        key = createPrivateKey({ key: Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), seed]), format: 'der', type: 'pkcs8' });
      }
    } catch (e) {
      throw new Error(`ASOF_AUDIT_SIGNING_KEY is not a usable Ed25519 private key: ${(e as Error).message}`);
    }
    if (key.asymmetricKeyType !== 'ed25519') throw new Error(`ASOF_AUDIT_SIGNING_KEY must be an Ed25519 key, got ${key.asymmetricKeyType}`);
    return new HeadSigner(key);
  }

  /** Base64 Ed25519 signature of the UTF-8 message. */
  sign(message: string): string {
    return sign(null, Buffer.from(message), this.key).toString('base64');
  }

  check(message: string, signature: string): boolean {
    return verifySignature(null, Buffer.from(message), createPublicKey(this.key), Buffer.from(signature, 'base64'));
  }
}

export function checkRange(from: number | undefined, to: number | undefined): void {
  if (from !== undefined && to !== undefined && from > to) throw new AsofError('ASOF_INVALID_ARGUMENT', `from (${from}) is after to (${to})`, [{ field: 'from', reason: 'after to' }]);
}
