/**
 * ASOF_AUDIT_SIGNING_KEY forms, checked against RFC 8032's first Ed25519 test
 * vector (secret key, public key and the signature of the empty message are
 * the RFC's, not computed here).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createPublicKey } from 'node:crypto';
import { HeadSigner } from '../../src/audit/chain.js';

const SECRET = '9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60';
const PUBLIC = 'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a';
const SIGNATURE = 'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b';

test('a hex or base64 seed signs as RFC 8032 says, and the published public key is the matching one', () => {
  for (const text of [SECRET, Buffer.from(SECRET, 'hex').toString('base64')]) {
    const s = HeadSigner.fromText(text);
    assert.equal(Buffer.from(s.sign(''), 'base64').toString('hex'), SIGNATURE);
    const raw = createPublicKey(s.publicKey).export({ format: 'der', type: 'spki' }).subarray(-32).toString('hex');
    assert.equal(raw, PUBLIC);
    assert.equal(s.check('', Buffer.from(SIGNATURE, 'hex').toString('base64')), true);
    assert.equal(s.check('x', Buffer.from(SIGNATURE, 'hex').toString('base64')), false);
  }
});

test('a key that is not Ed25519 is refused at start, naming the setting', () => {
  assert.throws(() => HeadSigner.fromText('abcd'), /ASOF_AUDIT_SIGNING_KEY/);
  assert.throws(() => HeadSigner.fromText('-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----'), /ASOF_AUDIT_SIGNING_KEY/);
});
